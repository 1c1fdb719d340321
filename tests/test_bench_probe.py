"""bench/camvid_probe.py: its IoU, pixel sampling and probe fit, by hand."""
import os.path as osp
import sys

import pytest
import torch

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'bench'))
from camvid_probe import IoU, fit_probe, sample_pixels  # noqa: E402


def test_iou_by_hand_ignores_labels_outside_the_classes():
    iou = IoU(3)
    # the pixels labelled 3 (void) and 255 do not count; of the others, class
    # 0: 1 hit, predicted twice, labelled once -> 1/2; class 1: 1 hit,
    # predicted twice, labelled twice -> 1/3; class 2: labelled once, never
    # predicted -> 0
    iou.add(torch.tensor([0, 0, 1, 2, 2, 1]), torch.tensor([0, 1, 1, 3, 255, 2]))
    assert iou.per_class() == pytest.approx([50.0, 100 / 3, 0.0])


def test_sample_pixels_takes_labelled_pixels_at_the_feature_grid():
    feat = torch.arange(2 * 2 * 2, dtype=torch.float32).view(1, 2, 2, 2)  # D=2, 2x2
    label = torch.tensor([[0, 0, 11, 11], [0, 0, 11, 11],
                          [1, 1, 255, 255], [1, 1, 255, 255]])  # 4x4: nearest -> [[0, 11], [1, 255]]
    x, y = sample_pixels(feat, label, 11, 10, torch.Generator().manual_seed(0))
    got = sorted(zip(y.tolist(), x.tolist()))
    assert got == [(0, [0.0, 4.0]), (1, [2.0, 6.0])]  # pixel (0, 0) and (1, 0) of each channel


def test_fit_probe_separates_separable_classes():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]])
    y = torch.randint(0, 3, (300,), generator=gen)
    x = centres[y] + 0.3 * torch.randn(300, 2, generator=gen)
    weight, bias = fit_probe(x, y, 3, torch.tensor([1.0, 2.0, 0.5]))
    assert ((x @ weight.t() + bias).argmax(1) == y).all()
