"""The training step's verbs (models/learning_step.py, subcentroid_learning.py)
by hand, without building a head."""
import math

import pytest
import torch

from mmseg_dnc.models import subcentroid_learning as learning
from mmseg_dnc.models.learning_step import (LearningSettings, SubcentroidState,
                                            assign_and_update, check_label_range,
                                            labelled_pixels, own_scores_masked)


def test_restart_picks_give_the_ith_dead_the_ith_pixel():
    dead = torch.tensor([[False, True, True], [True, False, False]])
    pixels = torch.tensor([[[3., 4.], [0., 2.], [9., 9.]],  # class 0's candidates, in order
                           [[1., 0.], [5., 5.], [5., 5.]]])
    exists = torch.tensor([[True, False, False], [True, True, True]])  # class 0: one pixel
    restart, picks = learning.restart_picks(dead, pixels, exists)
    # class 0: k=1 takes pixel 0; k=2 would take pixel 1, which does not exist
    assert restart.tolist() == [[False, True, False], [True, False, False]]
    torch.testing.assert_close(picks, torch.tensor([[0.6, 0.8], [1.0, 0.0]]))


def test_rescore_rows_recomputes_only_the_given_rows():
    own = torch.tensor([[0.5, 0.5], [0.1, 0.2]])
    x = torch.tensor([[1., 0.], [0., 1.]])
    y = torch.tensor([0, 1])
    sub = torch.tensor([[[1., 0.], [0., 1.]], [[0.6, 0.8], [-1., 0.]]])  # (C=2, K=2, D=2)
    out = learning.rescore_rows(own, x, y, sub, torch.tensor([False, True]))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5], [0.8, 0.0]]))
    assert own[1].tolist() == pytest.approx([0.1, 0.2])  # not changed in place


def test_class_seeds_are_rows_of_the_class_at_its_own_k():
    x = torch.eye(4)
    y = torch.tensor([1, 1, 0, 1])
    seeds = learning.class_seeds(x, y, torch.tensor([False, True]), [2, 3],
                                 torch.zeros(2, 3, 4))
    assert seeds[0].abs().sum() == 0  # not ready: untouched
    rows = {tuple(r.tolist()) for r in seeds[1]}
    assert rows == {tuple(x[i].tolist()) for i in (0, 1, 3)}  # its 3 pixels, each once


def test_labelled_pixels_by_hand():
    # B=1, D=2, h=1, w=3; C=2, K=2; the middle pixel is ignored
    emb = torch.tensor([[[[1., 0., 0.6]], [[0., 1., 0.8]]]])
    sub_scores = torch.tensor([[[[.9, .1, .2]], [[.3, .4, .5]], [[.0, .6, .7]], [[.8, .2, .1]]]])
    logits = torch.tensor([[[[2., 0., 0.]], [[0., 1., 3.]]]])  # predicts 0, 1, 1
    label = torch.tensor([[[[0, 255, 0]]]])
    px = labelled_pixels(emb, sub_scores, logits, label, 255, 2)
    assert px.index.tolist() == [0, 2]
    assert px.y.tolist() == [0, 0]
    torch.testing.assert_close(px.own, torch.tensor([[.9, .3], [.2, .5]]))
    assert px.correct.tolist() == [True, False]
    # every pixel's C*K scores, a view that the losses read by px.index
    assert px.scores.data_ptr() == sub_scores.data_ptr()
    assert px.scores[2].tolist() == pytest.approx([.2, .5, .7, .1])
    # per-class K: class 0 uses one slot, its second scores -inf
    mask = torch.tensor([[True, False], [True, True]])
    assert own_scores_masked(px.own, px.y, mask)[:, 1].tolist() == [-math.inf, -math.inf]


def test_label_range_is_checked_once_with_the_file_named():
    check_label_range(torch.tensor([[[[0, 10, 255]]]]), 11, 255)
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(seg_map_path='val/a.png'))
    with pytest.raises(ValueError, match=r'(?s)outside the 11 classes.*val/a.png: values '
                                         r'\[11, 200\]'):
        check_label_range(torch.tensor([[[[0, 11, 200]]]]), 11, 255, [sample])


def test_one_step_by_hand_moves_the_assigned_subcentroid():
    """K=1, C=2, momentum 0.5, every pixel learns: p <- normalise(0.5 p + 0.5 mean)."""
    sub = torch.tensor([[[1., 0.]], [[0., 1.]]])
    state = SubcentroidState(sub, torch.ones(2, 1, dtype=torch.bool), None,
                             None, None, None, None, None, None, None)
    settings = LearningSettings([1, 1], 0.5, 0.05, 3, 'all', 0.0, 50, 'worst', 64)
    x = torch.tensor([[0., 1.], [0.6, 0.8]])
    y = torch.tensor([0, 1])
    own = torch.tensor([[0.], [0.8]])
    assignment = assign_and_update(state, settings, x, y, own, torch.tensor([False, True]))
    assert assignment.tolist() == [0, 0]
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(sub[0, 0], torch.tensor([s, s]))  # (0.5, 0.5) normalised
    expected = torch.nn.functional.normalize(torch.tensor([0.3, 0.9]), dim=0)
    torch.testing.assert_close(sub[1, 0], expected)


def test_gumbel_sample_draws_the_sinkhorn_choice_about_e_over_e_plus_k_minus_1():
    """ProtoSeg's update draw: at K=10 a one-hot plan row wins with p = e/(e+9)."""
    k, m = 10, 20000
    plan = torch.zeros(m, k)
    plan[:, 3] = 1.0
    labels = torch.zeros(m, dtype=torch.long)
    drawn = learning.gumbel_sample(plan, labels, generator=torch.Generator().manual_seed(0))
    share = (drawn == 3).float().mean().item()
    assert abs(share - math.e / (math.e + k - 1)) < 0.01  # 0.232
    # the others are drawn alike: (1 - 0.232) / 9 each
    others = torch.bincount(drawn[drawn != 3], minlength=k).float()[[0, 1, 2, 4, 5, 6, 7, 8, 9]]
    assert (others / m).sub((1 - share) / (k - 1)).abs().max() < 0.01
    # unused slots of a per-class K are never drawn
    active = torch.tensor([[True, True] + [False] * 8])
    drawn = learning.gumbel_sample(plan, labels, active, torch.Generator().manual_seed(1))
    assert set(drawn.tolist()) == {0, 1}


def test_the_gumbel_update_moves_drawn_subcentroids_and_keeps_argmax_targets():
    """The update moves the drawn sub-centroid; the step still returns the
    Sinkhorn argmax (the PPC/PPD target)."""
    torch.manual_seed(0)
    sub = torch.nn.functional.normalize(torch.randn(1, 4, 3), dim=-1)
    before = sub.clone()
    x = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    y = torch.zeros(64, dtype=torch.long)
    own = x @ sub[0].t()
    settings = LearningSettings([4], 0.9, 0.05, 3, 'all', 0.0, 50, 'worst', 64,
                                update_assignment='gumbel_sample')
    state = SubcentroidState(sub, torch.ones(1, 4, dtype=torch.bool), None,
                             None, None, None, None, None, None, None)
    argmax = settings._replace(update_assignment='sinkhorn_argmax')
    twin = SubcentroidState(before.clone(), *state[1:])
    targets = assign_and_update(state, settings, x, y, own, torch.ones(64, dtype=torch.bool))
    targets_argmax = assign_and_update(twin, argmax, x, y, own, torch.ones(64, dtype=torch.bool))
    assert torch.equal(targets, targets_argmax)  # the same targets either way
    assert not torch.allclose(sub, twin.sub_centroids)  # moved by other pixels
    assert torch.allclose(sub.norm(dim=-1), torch.ones(1, 4))


def test_projection_kinds():
    from mmseg_dnc.models.projection import build_projection
    assert build_projection(False, 8) is None
    bn = dict(type='BN')
    protoseg = build_projection('conv_relu_conv', 8, norm_cfg=bn, act_cfg=dict(type='ReLU'))
    normed = build_projection(True, 8, norm_cfg=bn, act_cfg=dict(type='ReLU'))
    assert [type(m).__name__ for m in protoseg.modules()] == [
        'Sequential', 'ConvModule', 'Conv2d', 'ReLU', 'Conv2d']  # no norm, as ProtoSeg
    assert 'BatchNorm2d' in [type(m).__name__ for m in normed.modules()]
    assert protoseg[0].conv.bias is not None  # without a norm the first conv has a bias
    out = protoseg(torch.randn(2, 8, 5, 5))
    assert out.shape == (2, 8, 5, 5)
