"""ClassWeightedCrossEntropyLoss by hand (mmseg 1.2.2's weighted CE fails on 255)."""
import math

import pytest
import torch

from mmseg.registry import MODELS


def test_weighted_mean_over_labelled_pixels_by_hand():
    loss = MODELS.build(dict(type='ClassWeightedCrossEntropyLoss', class_weight=[1.0, 3.0]))
    # 3 pixels: class 0 with p0 = 1/2, class 1 with p1 = e/(1+e), one ignored
    logits = torch.tensor([[[[0.0, 0.0, 5.0]], [[0.0, 1.0, -5.0]]]])  # (1, 2, 1, 3)
    label = torch.tensor([[[0, 1, 255]]])
    ce0, ce1 = math.log(2), math.log(1 + math.e) - 1
    expected = (1.0 * ce0 + 3.0 * ce1) / (1.0 + 3.0)
    assert float(loss(logits, label, ignore_index=255)) == pytest.approx(expected, rel=1e-6)
    assert loss.loss_name == 'loss_ce'


def test_mmseg_weighted_cross_entropy_fails_where_this_one_works():
    logits, label = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    label[0, 0, 0] = 255
    mmseg_loss = MODELS.build(dict(type='CrossEntropyLoss', class_weight=[1.0, 2.0, 3.0]))
    with pytest.raises(IndexError):  # if mmseg fixes it, this loss can go
        mmseg_loss(logits, label, ignore_index=255)
    ours = MODELS.build(dict(type='ClassWeightedCrossEntropyLoss', class_weight=[1., 2., 3.]))
    assert torch.isfinite(ours(logits, label, ignore_index=255))
    all_ignored = torch.full_like(label, 255)
    assert float(ours(logits.requires_grad_(), all_ignored)) == 0.0


@pytest.mark.parametrize('weights', [[], [1.0, -1.0], [1.0, float('nan')], 'abc', [True]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(ValueError, match='one positive number per class'):
        MODELS.build(dict(type='ClassWeightedCrossEntropyLoss', class_weight=weights))
    loss = MODELS.build(dict(type='ClassWeightedCrossEntropyLoss', class_weight=[1.0, 2.0]))
    with pytest.raises(ValueError, match='2 class weights for 3 classes'):
        loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
