"""bench/camvid_classifier.py: its DNC logits are the head's, and the affine
refit finds the hand-worked optimum."""
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'bench'))
from camvid_classifier import fit_affine, normalised_class_scores  # noqa: E402

from .conftest import build_model  # noqa: E402


def test_scores_times_the_head_s_affine_are_the_head_s_logits():
    head = build_model('FCNHead', 5, num_subcentroids=[3, 2, 3, 1, 3]).decode_head.eval()
    with torch.no_grad():
        head.score_norm.weight.copy_(torch.tensor([1.5, .5, 2., 1., .8]))
        head.score_norm.bias.copy_(torch.tensor([.1, -.2, 0., .3, -.1]))
        feat = torch.randn(2, 32, 3, 4)
        want = head.cls_seg(feat)  # (2, 5, 3, 4)
        flat = head.embed(feat).permute(0, 2, 3, 1).reshape(-1, 32)
        z = normalised_class_scores(flat, head.sub_centroids, head.slot_mask)
        got = (z * head.score_norm.weight + head.score_norm.bias).view(2, 3, 4, 5)
    torch.testing.assert_close(got.permute(0, 3, 1, 2), want)


def test_affine_refit_reaches_the_class_frequencies():
    # every pixel has the same normalised scores (1, -1), a quarter are class 0:
    # the best logits give class 1 the probability 3/4, whatever the start
    z = torch.tensor([[1., -1.]]).repeat(8, 1)
    y = torch.tensor([0, 1, 1, 1] * 2)
    scale, shift = fit_affine(z, y, torch.ones(2), torch.zeros(2))
    p = F.softmax(z[0] * scale + shift, dim=0)
    torch.testing.assert_close(p, torch.tensor([.25, .75]), atol=1e-4, rtol=0)
    # class weights 3:1 balance them: 1/2 each
    scale, shift = fit_affine(z, y, torch.ones(2), torch.zeros(2), torch.tensor([3., 1.]))
    p = F.softmax(z[0] * scale + shift, dim=0)
    torch.testing.assert_close(p, torch.tensor([.5, .5]), atol=1e-4, rtol=0)
