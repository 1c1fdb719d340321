"""How sub-centroids learn: each mechanism against hand-worked numbers, in the
head, through a state_dict round trip, and across 2 processes."""
import math
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mmseg.registry import MODELS
from mmseg_dnc.models import dnc_core
from mmseg_dnc.models import subcentroid_learning as learning
from .test_distributed import two_forked_ranks

S = math.sqrt(0.5)


# ------------------------------------------------------------ pure functions
def test_warmup_momentum_by_hand():
    updates = torch.tensor([[0.0, 1.0, 10.0, 100.0, 1e6]])
    expected = torch.tensor([[1 / 10, 2 / 11, 11 / 20, 101 / 110, 0.999]])
    torch.testing.assert_close(learning.warmup_momentum(0.999, updates), expected)
    # the start's weight after n updates is 9! n! / (n + 9)!
    weight = torch.prod(learning.warmup_momentum(0.999, torch.arange(20.0)))
    assert math.isclose(weight.item(), math.factorial(9) * math.factorial(20)
                        / math.factorial(29), rel_tol=1e-4)


def test_per_subcentroid_momentum_by_hand():
    # p = (1, 0), mean of the assigned pixels = (0, 1): momentum 0.5 gives
    # normalise(0.5, 0.5) = (s, s); the other sub-centroid (momentum 0.9)
    # gets no pixel and keeps its place
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    x = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    labels, assignment = torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
    new, counts = dnc_core.momentum_update(p, x, labels, assignment,
                                           torch.tensor([[0.5, 0.9]]))
    torch.testing.assert_close(new, torch.tensor([[[S, S], [0.0, 1.0]]]))
    assert counts.tolist() == [[2.0, 0.0]]


def test_kmeans_pp_draws_far_pixels_more_often():
    # after seed a = (1, 0): b = (0, 1) is at squared distance 2, c = (-1, 0)
    # at 4, a itself at 0: the second seed is c with probability 4/6
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    gen = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(3000):
        seeds = learning.kmeans_pp_seeds(x, 2, generator=gen)
        if torch.equal(seeds[0], x[0]):
            seconds.append(int((seeds[1] == x[2]).all()))
    assert len(seconds) > 800  # the first seed is uniform
    assert abs(sum(seconds) / len(seconds) - 4 / 6) < 0.05


def test_kmeans_pp_seeds_are_distinct_pixels():
    a, b = [1.0, 0.0], [0.0, 1.0]
    x = torch.tensor([a, a, a, b])
    for seed in range(20):
        seeds = learning.kmeans_pp_seeds(x, 2, generator=torch.Generator().manual_seed(seed))
        assert sorted(map(tuple, seeds.tolist())) == [(0.0, 1.0), (1.0, 0.0)]
    # more seeds than distinct pixels: still distinct rows of x, no error
    assert learning.kmeans_pp_seeds(x, 4).shape == (4, 2)
    with pytest.raises(ValueError, match='3 pixels cannot seed 4'):
        learning.kmeans_pp_seeds(x[:3], 4)


def test_learning_mask_rules():
    labels = torch.tensor([0, 0, 1, 1, 2])
    correct = torch.tensor([True, False, False, False, True])
    assert learning.learning_mask(labels, correct, 3, 'correct').tolist() == \
        [True, False, False, False, True]
    assert learning.learning_mask(labels, correct, 3, 'all').all()
    # class 1 has no correct pixel: it learns from both of its pixels
    assert learning.learning_mask(labels, correct, 3, 'correct_or_all').tolist() == \
        [True, False, True, True, True]


def test_dead_subcentroids_by_hand():
    # K = 4, 100 pixels: fair share 25, threshold 0.1 -> under 2.5 is dead
    wins = torch.tensor([[50.0, 47.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert learning.dead_subcentroids(wins, 0.1).tolist() == \
        [[False, False, False, True], [False] * 4]
    # class 0 with 2 active slots: fair share 50, under 5 is dead
    active = torch.tensor([[True, True, False, False], [True] * 4])
    wins = torch.tensor([[96.0, 4.0, 0.0, 0.0], [0.0] * 4])
    assert learning.dead_subcentroids(wins, 0.1, active).tolist() == \
        [[False, True, False, False], [False] * 4]


def test_worst_fitted_by_hand():
    x = torch.eye(4)[:, :3]  # 4 pixels in 3-D (the last is zero: never mind)
    labels = torch.tensor([0, 0, 0, 1])
    best = torch.tensor([0.9, 0.1, 0.5, 0.7])
    worst, exists = learning.worst_fitted(x, labels, best, num_classes=3, count=2)
    torch.testing.assert_close(worst[0], x[[1, 2]])  # least similar first
    torch.testing.assert_close(worst[1, 0], x[3])
    assert exists.tolist() == [[True, True], [True, False], [False, False]]


# ------------------------------------------------------------------ the head
C, K, D = 3, 4, 8


def head(**keys):
    """A small head at the reference settings (random start) but for ``keys``."""
    torch.manual_seed(0)
    keys = {'subcentroid_init': 'random', **keys}
    return MODELS.build(dict(type='DNCDecodeHead', decoder='FCNHead', in_channels=D,
                             channels=D, num_convs=0, concat_input=False, num_classes=C,
                             num_subcentroids=K, dropout_ratio=0, **keys))


def step(model, x, y, correct=None):
    """One assignment and update on given embeddings (M, D) and classes (M,);
    ``correct`` (M,) says which pixels the prediction gets right."""
    correct = torch.ones_like(y, dtype=torch.bool) if correct is None else correct
    own = torch.einsum('md,mkd->mk', x, model.sub_centroids[y])
    with torch.no_grad():
        return model.assign_and_update(x, y, own, correct)


def pixels(n_per_class, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(n_per_class)])
    return F.normalize(torch.randn(len(y), D, generator=gen), dim=1), y


def test_kmeans_start_seeds_a_class_once_it_has_k_pixels():
    model = head(subcentroid_init='kmeans++', momentum=0.5)
    before = model.sub_centroids.clone()
    x, y = pixels([6, 2, 0])  # class 0: 6 >= K pixels; class 1: 2 < K; class 2: none
    step(model, x, y)
    assert model.subcentroid_seeded.tolist() == [True, False, False]
    # class 0's sub-centroids started at 4 of its pixels (then moved towards
    # the means of the pixels assigned to them): each is closest to a pixel
    # of class 0, with a cosine far from a random start's
    cos = model.sub_centroids[0] @ x[:6].t()
    assert (cos.max(dim=1).values > 0.7).all()
    # classes 1 and 2 are untouched, whatever the update rule
    assert torch.equal(model.sub_centroids[1:], before[1:])
    x2, y2 = pixels([0, 5, 0], seed=1)
    step(model, x2, y2)
    assert model.subcentroid_seeded.tolist() == [True, True, False]


def test_kmeans_start_seeds_are_pixels_before_the_update():
    # momentum 0.999 and no warm-up: the first update moves a seed by at most
    # ~0.001, so each sub-centroid of class 0 is (almost) one of its pixels
    model = head(subcentroid_init='kmeans++')
    x, y = pixels([10])
    step(model, x, y)
    cos = model.sub_centroids[0] @ x.t()
    assert (cos.max(dim=1).values > 0.99).all()
    assert len(set(cos.argmax(dim=1).tolist())) == K  # K distinct pixels


def test_warmup_counts_updates_and_forgets_the_start():
    model = head(momentum_warmup=True)
    start = model.sub_centroids.clone()
    x, y = pixels([8, 8, 0])
    for _ in range(3):
        step(model, x, y)
    updated = model.subcentroid_updates
    assert updated[2].sum() == 0 and (updated[:2] <= 3).all() and updated[:2].sum() > 0
    # after the first update a sub-centroid keeps only 10% of its start
    moved = (model.sub_centroids[:2] * start[:2]).sum(-1)[updated[:2] > 0]
    reference = head()
    for _ in range(3):
        step(reference, x, y)
    kept = (reference.sub_centroids[:2] * start[:2]).sum(-1)[updated[:2] > 0]
    assert (moved < kept).all() and (kept > 0.99).all()


def test_starved_class_moves_with_correct_or_all():
    x, y = pixels([6, 6, 0])
    none_correct = torch.zeros_like(y, dtype=torch.bool)
    reference, starved = head(), head(update_from='correct_or_all')
    before = reference.sub_centroids.clone()
    step(reference, x, y, none_correct)
    step(starved, x, y, none_correct)
    assert torch.equal(reference.sub_centroids, before)  # the reference never moves
    assert not torch.equal(starved.sub_centroids[:2], before[:2])
    assert torch.equal(starved.sub_centroids[2], before[2])


def test_dead_subcentroid_restarts_on_the_worst_fitted_pixel():
    model = head(restart_dead_below=0.5, restart_dead_every=2)
    # class 0's sub-centroid 0 sits on its pixels; 1-3 point away from them
    # (and with momentum 0.999 they stay there, winning nothing)
    x, y = pixels([6])
    with torch.no_grad():
        model.sub_centroids[0, 0] = F.normalize(x.sum(0), dim=0)
        model.sub_centroids[0, 1:] = -model.sub_centroids[0, 0]
    step(model, x, y)
    assert int(model.restart_window_step) == 1 and model.subcentroid_wins[0, 0] == 6
    before = model.sub_centroids.clone()
    step(model, x, y)  # end of the window: 1, 2 and 3 won nothing
    assert model.subcentroid_wins.sum() == 0  # a new window
    own = x @ before[0].t()
    worst = own.max(dim=1).values.argsort()[:3]  # the 3 worst-fitted pixels
    torch.testing.assert_close(model.sub_centroids[0, 1:], x[worst])
    assert model.sub_centroids[0, 0] @ before[0, 0] > 0.999  # alive: only updated


def test_dead_subcentroid_restarts_on_random_pixels():
    """restart_on='random': the dead take the class's pixels of lowest uniform
    key (torch's generator at the step), not its worst-fitted ones."""
    model = head(restart_dead_below=0.5, restart_dead_every=2, restart_on='random')
    x, y = pixels([6])
    with torch.no_grad():
        model.sub_centroids[0, 0] = F.normalize(x.sum(0), dim=0)
        model.sub_centroids[0, 1:] = -model.sub_centroids[0, 0]
    step(model, x, y)
    before = model.sub_centroids.clone()
    torch.manual_seed(5)
    keys = torch.rand(6)
    torch.manual_seed(5)
    step(model, x, y)  # end of the window: 1, 2 and 3 restart
    drawn = keys.argsort()[:3]
    torch.testing.assert_close(model.sub_centroids[0, 1:], x[drawn])
    worst = (x @ before[0].t()).max(dim=1).values.argsort()[:3]
    assert not torch.equal(drawn, worst)  # so the test tells the two rules apart
    assert model.sub_centroids[0, 0] @ before[0, 0] > 0.999


def test_learning_state_is_saved_and_resumes_exactly():
    keys = dict(subcentroid_init='kmeans++', momentum_warmup=True,
                update_from='correct_or_all', restart_dead_below=0.5, restart_dead_every=2)
    batches = [pixels([6, 5, 4], seed=s) for s in range(5)]
    torch.manual_seed(1)
    first = head(**keys)
    for x, y in batches[:2]:
        step(first, x, y)
    state = {k: v.clone() for k, v in first.state_dict().items()}
    assert {'subcentroid_seeded', 'subcentroid_updates', 'subcentroid_wins',
            'restart_window_step'} <= set(state)
    rng = torch.get_rng_state()
    for x, y in batches[2:]:
        step(first, x, y)
    resumed = head(**keys)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    for x, y in batches[2:]:
        step(resumed, x, y)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_reference_settings_keep_the_state_dict_keys():
    assert set(head().state_dict()) == {'sub_centroids', 'feature_norm.weight',
                                        'feature_norm.bias', 'score_norm.weight',
                                        'score_norm.bias'}


def test_the_default_start_is_kmeans_pp():
    torch.manual_seed(0)
    default = MODELS.build(dict(type='DNCDecodeHead', decoder='FCNHead', in_channels=D,
                                channels=D, num_convs=0, concat_input=False, num_classes=C,
                                num_subcentroids=K, dropout_ratio=0))
    assert default.subcentroid_init == 'kmeans++'
    assert set(default.state_dict()) == set(head().state_dict()) | {'subcentroid_seeded'}
    x, y = pixels([6, 2, 0])
    step(default, x, y)
    assert default.subcentroid_seeded.tolist() == [True, False, False]


def test_a_checkpoint_without_learning_state_loads_as_trained(warnings_logged):
    old = head().state_dict()  # as saved by a head without the mechanisms
    model = head(subcentroid_init='kmeans++', momentum_warmup=True)
    model.load_state_dict(old)
    assert torch.equal(model.sub_centroids, old['sub_centroids'])
    assert model.subcentroid_seeded.all()  # trained sub-centroids are never re-seeded
    torch.testing.assert_close(
        learning.warmup_momentum(0.999, model.subcentroid_updates),
        torch.full((C, K), 0.999))
    assert any('count as seeded and warmed up' in r.getMessage() for r in warnings_logged)


# --------------------------------------------------------------- 2 processes
def _worker(rank, world_size, port, out_dir):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world_size)
    out = {}
    x, y = pixels([6, 6, 6], seed=3)
    mine = torch.arange(rank, len(y), 2)
    correct = torch.arange(len(y)) % 3 == 0
    correct[y == 1] = False  # class 1: no rank has a correct pixel
    correct[(y == 2) & (torch.arange(len(y)) % 2 == 1)] = False  # class 2: rank 0 only
    out['mask'] = learning.learning_mask(y[mine], correct[mine], C, 'correct_or_all')
    best = torch.linspace(-1, 1, len(y))
    out['worst'], out['exists'] = learning.worst_fitted(x[mine], y[mine], best[mine], C, 2)
    present = torch.tensor([rank == 1, True, False])
    out['values'], out['present'] = learning.gather_per_class(
        torch.full((C, 2), float(rank)), present)
    torch.save(out, osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_ranks_agree_with_one_process(tmp_path):
    two_forked_ranks(_worker, tmp_path)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    x, y = pixels([6, 6, 6], seed=3)
    correct = torch.arange(len(y)) % 3 == 0
    correct[y == 1] = False
    correct[(y == 2) & (torch.arange(len(y)) % 2 == 1)] = False
    whole = learning.learning_mask(y, correct, C, 'correct_or_all')
    for rank, out in enumerate(ranks):
        assert torch.equal(out['mask'], whole[rank::2])
    worst, exists = learning.worst_fitted(x, y, torch.linspace(-1, 1, len(y)), C, 2)
    for out in ranks:
        torch.testing.assert_close(out['worst'], worst, rtol=0, atol=0)
        assert torch.equal(out['exists'], exists)
        # class 0 from rank 1 (the only one with it), class 1 from rank 0
        assert out['values'][:, 0].tolist() == [1.0, 0.0, 0.0]
        assert out['present'].tolist() == [True, True, False]


def test_k_per_class_from_frequency_by_hand():
    # sqrt of the counts: 30, 10, 0 -> scaled to mean 4 over 3 classes (sum 12):
    # 9, 3, 0 -> clamped to [1, 8]: 8, 3, 1
    assert learning.subcentroids_from_frequency([900, 100, 0], mean_k=4, k_min=1,
                                                k_max=8) == [8, 3, 1]
    assert learning.subcentroids_from_frequency([4, 4], mean_k=10) == [10, 10]
    with pytest.raises(ValueError, match='finite and >= 0'):
        learning.subcentroids_from_frequency([1, -1])
