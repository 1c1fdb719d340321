"""The DNC math against hand-worked numbers and a per-class reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmseg_dnc.models import dnc_core
from mmseg_dnc.models.subcentroid_memory import enqueue_, stored_entries


def reference_sinkhorn(scores, epsilon=0.05, iterations=3):
    """ProtoSeg's distributed_sinkhorn for one class (exp domain), without its
    Gumbel sampling: (n, K) scores -> (n, K) plan, rows summing to 1."""
    plan = torch.exp(scores.double() / epsilon).t()  # (K, n)
    k, n = plan.shape
    plan /= plan.sum()
    for _ in range(iterations):
        plan /= plan.sum(dim=1, keepdim=True)
        plan /= k
        plan /= plan.sum(dim=0, keepdim=True)
        plan /= n
    return (plan * n).t()


def test_scores_are_cosines_and_class_score_is_max_over_k():
    # two pixels in 2-D; class 0 has sub-centroids at 0 and 90 degrees, class 1
    # at 180 and 45 degrees
    s = math.sqrt(0.5)
    sub_centroids = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[-1.0, 0.0], [s, s]]])
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8]]).t().reshape(1, 2, 1, 2)  # (B, D, h, w)
    sub = dnc_core.subcentroid_scores(emb, sub_centroids)
    assert sub.shape == (1, 4, 1, 2)
    expected = torch.tensor([[1.0, 0.0, -1.0, s], [0.6, 0.8, -0.6, 1.4 * s]]).t()
    torch.testing.assert_close(sub[0, :, 0, :], expected)
    cls = dnc_core.class_scores(sub, num_classes=2)
    torch.testing.assert_close(cls[0, :, 0, :], torch.tensor([[1.0, 0.8], [s, 1.4 * s]]))


def test_inactive_slots_never_win_the_max():
    sub = torch.tensor([0.1, 0.9, 0.2, 0.3]).view(1, 4, 1, 1)
    active = torch.tensor([[True, False], [True, True]])
    cls = dnc_core.class_scores(sub, 2, active)
    torch.testing.assert_close(cls.flatten(), torch.tensor([0.1, 0.3]))


def test_embed_is_layernorm_then_unit_length():
    feat = torch.randn(2, 8, 3, 4) * 5 + 3
    weight, bias = torch.rand(8) + 0.5, torch.randn(8)
    emb = dnc_core.embed(feat, weight, bias)
    assert emb.shape == feat.shape
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2, 3, 4))
    by_hand = F.layer_norm(feat.permute(0, 2, 3, 1), (8,), weight, bias)
    by_hand = by_hand / by_hand.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(emb, by_hand.permute(0, 3, 1, 2))


def test_pixel_rows_by_hand_in_both_layouts():
    # B=2, D=2, h=1, w=2: pixel p of image b holds (10b + p, -(10b + p))
    maps = torch.tensor([[[[0., 1.]], [[-0., -1.]]], [[[10., 11.]], [[-10., -11.]]]])
    index = torch.tensor([3, 0, 2])  # image 1 pixel 1, image 0 pixel 0, image 1 pixel 0
    for layout in (torch.contiguous_format, torch.channels_last):
        rows = dnc_core.pixel_rows(maps.contiguous(memory_format=layout), index)
        assert rows.tolist() == [[11., -11.], [0., 0.], [10., -10.]]


def test_embed_rows_are_the_rows_of_embed():
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 8, 3, 4, generator=gen) * 5 + 3
    weight, bias = torch.rand(8, generator=gen) + 0.5, torch.randn(8, generator=gen)
    emb = dnc_core.embed(feat, weight, bias).permute(0, 2, 3, 1).reshape(-1, 8)
    index = torch.tensor([23, 0, 5, 12, 7])
    for layout in (torch.contiguous_format, torch.channels_last):
        source = dnc_core.EmbeddingSource(feat.contiguous(memory_format=layout),
                                          (weight, bias, 1e-5))
        torch.testing.assert_close(source.rows(index), emb[index])
    # a source of unit embeddings hands on their rows as they are
    maps = dnc_core.embed(feat, weight, bias)
    assert torch.equal(dnc_core.EmbeddingSource(maps).rows(index), emb[index])


def test_sinkhorn_one_iteration_by_hand():
    # exp(scores / eps) = [[4, 1], [1, 1]]. Per sub-centroid: column 0 sums to 5,
    # column 1 to 2 -> [[.4, .25], [.1, .25]] after dividing by K=2; per pixel:
    # rows .65 and .35 -> times n=2 -> [[8/13, 5/13], [2/7, 5/7]].
    eps = 0.05
    scores = eps * torch.log(torch.tensor([[4.0, 1.0], [1.0, 1.0]]))
    plan, assignment = dnc_core.sinkhorn_assign(scores, torch.tensor([0, 0]), 1, eps, 1)
    torch.testing.assert_close(plan, torch.tensor([[8 / 13, 5 / 13], [2 / 7, 5 / 7]]))
    # pixel 1 is tied on its raw scores; equipartition sends it to sub-centroid 1
    assert assignment.tolist() == [0, 1]


def test_a_class_with_one_pixel_goes_to_its_nearest_subcentroid():
    # one pixel: the per-sub-centroid step leaves one entry per column, so the
    # plan's row is uniform, 1/K each; the tie goes to the highest score
    scores = torch.tensor([[0.1, -0.3, 0.7, 0.2], [0.9, 0.1, 0.0, 0.0], [0.0, 0.2, 0.1, 0.3]])
    plan, assignment = dnc_core.sinkhorn_assign(scores, torch.tensor([0, 1, 1]), 2)
    torch.testing.assert_close(plan[0], torch.full((4,), 0.25))
    assert assignment[0] == 2
    # with two pixels there is a preference again, and it stands
    assert not torch.allclose(plan[1], plan[1].mean().expand(4))
    assert assignment[1:].tolist() == [0, 3]


def test_sinkhorn_marginals_and_per_class_reference():
    torch.manual_seed(0)
    labels = torch.tensor([0] * 50 + [2] * 30 + [1] * 7)[torch.randperm(87)]
    scores = torch.rand(87, 4) * 2 - 1
    plan, assignment = dnc_core.sinkhorn_assign(scores, labels, 3, 0.05, 3)
    torch.testing.assert_close(plan.sum(dim=1), torch.ones(87))  # 1 per pixel
    for c in range(3):
        mine = labels == c
        expected = reference_sinkhorn(scores[mine]).float()
        torch.testing.assert_close(plan[mine], expected, rtol=1e-4, atol=1e-6)
        assert torch.equal(assignment[mine], expected.argmax(dim=1))


def test_sinkhorn_converges_to_equal_mass():
    torch.manual_seed(1)
    scores = torch.rand(64, 4) * 2 - 1
    plan, _ = dnc_core.sinkhorn_assign(scores, torch.zeros(64, dtype=torch.long), 1, 0.5, 200)
    torch.testing.assert_close(plan.sum(dim=0), torch.full((4,), 16.0), rtol=1e-4, atol=0)


def test_equipartition_spreads_one_class_over_its_subcentroids():
    # 400 pixels of one class, all nearest to sub-centroid 0: a nearest-
    # sub-centroid rule collapses them onto one; Sinkhorn spreads them.
    torch.manual_seed(0)
    k, d = 4, 16
    sub_centroids = F.normalize(torch.randn(1, k, d), dim=-1)
    x = F.normalize(sub_centroids[0, 0] * 3 + torch.randn(400, d) * 0.3, dim=-1)
    scores = x @ sub_centroids[0].t()
    assert torch.bincount(scores.argmax(dim=1), minlength=k).max() > 390
    _, assignment = dnc_core.sinkhorn_assign(scores, torch.zeros(400, dtype=torch.long), 1)
    counts = torch.bincount(assignment, minlength=k)
    assert counts.min() >= 60, counts.tolist()  # 100 each would be perfect


def test_sinkhorn_per_class_k():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    scores = torch.rand(6, 3)
    active = torch.tensor([[True, True, False], [True, True, True]])
    plan, assignment = dnc_core.sinkhorn_assign(scores, labels, 2, active=active)
    assert torch.isfinite(plan).all()
    assert (plan[:3, 2] == 0).all() and (assignment[:3] < 2).all()
    torch.testing.assert_close(plan.sum(dim=1), torch.ones(6))


@pytest.mark.parametrize('epsilon', [0.05, 0.005, 0.0005])
def test_sinkhorn_is_finite_where_exp_overflows(epsilon):
    # exp(1 / 0.0005) overflows even float64; the log domain does not care
    scores = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        plan, assignment = dnc_core.sinkhorn_assign(scores, torch.zeros(3, dtype=torch.long),
                                                    1, epsilon)
    assert plan.dtype == torch.float32 and torch.isfinite(plan).all()
    assert assignment[:2].tolist() == [0, 1]


def test_momentum_update_by_hand():
    sub_centroids = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # C=1, K=2, D=2
    x = torch.tensor([[0.0, 1.0], [0.6, 0.8]])
    new, counts = dnc_core.momentum_update(sub_centroids, x, torch.tensor([0, 0]),
                                           torch.tensor([0, 0]), momentum=0.5)
    # m = normalise(0.6, 1.8) = (0.316228, 0.948683); 0.5 p + 0.5 m =
    # (0.658114, 0.474342), norm 0.811242 -> (0.811242, 0.584710)
    torch.testing.assert_close(new[0, 0], torch.tensor([0.811242, 0.584710]), rtol=0, atol=1e-5)
    torch.testing.assert_close(new[0, 1], torch.tensor([0.0, 1.0]))  # no pixels: unchanged
    assert counts.tolist() == [[2.0, 0.0]]


def test_momentum_update_paper_setting_moves_a_little():
    torch.manual_seed(0)
    p = F.normalize(torch.randn(3, 2, 8), dim=-1)
    x = F.normalize(torch.randn(10, 8), dim=-1)
    new, _ = dnc_core.momentum_update(p, x, torch.full((10,), 1), torch.zeros(10, dtype=torch.long))
    moved = (new - p).norm(dim=-1)
    assert 0 < moved[1, 0] < 2e-3 and moved[0].max() == 0 and moved[2].max() == 0
    torch.testing.assert_close(new.norm(dim=-1), torch.ones(3, 2))


def test_ppc_and_ppd_by_hand():
    scores = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([0, 1])
    # PPC at temperature 1: -log(e / (e + 1)) = 0.313262 and -log(1/2) = 0.693147
    expected = (0.313262 + 0.693147) / 2
    assert dnc_core.ppc_loss(scores, target, 1.0).item() == pytest.approx(expected, abs=1e-5)
    # PPD: (1 - 1)^2 and (1 - 0.5)^2
    assert dnc_core.ppd_loss(scores, target).item() == pytest.approx(0.125)


def test_memory_ring_buffer():
    c, slots, d = 2, 3, 2
    memory, filled, pointer = torch.zeros(c, slots, d), torch.zeros(c, dtype=torch.long), \
        torch.zeros(c, dtype=torch.long)
    emb = torch.arange(10.0).view(5, 2)
    enqueue_(memory, filled, pointer, emb, torch.tensor([0, 0, 1, 0, 0]), per_step=2)
    assert filled.tolist() == [2, 1] and pointer.tolist() == [2, 1]
    stored, classes, _ = stored_entries(memory, filled)
    assert classes.tolist() == [0, 0, 1]
    assert stored[2].tolist() == [4.0, 5.0]  # the only class-1 pixel
    class0 = {tuple(r) for r in emb[[0, 1, 3, 4]].tolist()}
    assert {tuple(r) for r in stored[:2].tolist()} <= class0
    enqueue_(memory, filled, pointer, emb[:2], torch.tensor([0, 0]), per_step=2)
    assert filled.tolist() == [3, 1] and pointer.tolist() == [1, 1]  # wrapped around


def test_nearest_subcentroid_is_the_argmax_that_decides_the_class_score():
    sub = torch.tensor([0.1, 0.9, 0.2, 0.7, 0.3, 0.1]).view(1, 6, 1, 1)  # C=2, K=3
    assert dnc_core.nearest_subcentroid(sub, 2).flatten().tolist() == [1, 0]
    active = torch.tensor([[True, False, True], [True, True, True]])
    assert dnc_core.nearest_subcentroid(sub, 2, active).flatten().tolist() == [2, 0]
