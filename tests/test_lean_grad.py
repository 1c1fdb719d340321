"""The memory-lean backward of the head's training step (issue 23) against
plain autograd: the max over K bit for bit (ties included), PPC's
cross-entropy to float rounding, in float32 and under bfloat16 autocast; and
the head's training step keeps no (pixels x C*K)-wide tensor for its backward."""
import pytest
import torch
import torch.nn.functional as F

from mmseg_dnc.models import dnc_core, lean_grad


def grads(fn, *inputs):
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*inputs)
    upstream = torch.linspace(-1.0, 2.0, out.numel(), dtype=out.dtype).view(out.shape)
    (out * upstream).sum().backward()
    return out.detach(), [x.grad for x in inputs]


# (2, 3, K=4): untied rows, a two-way tie, a four-way tie, a tie below the max
TIED = torch.tensor([[[1., 3., 3., 0.], [0., 5., 1., 2.], [2., 2., 2., 2.]],
                     [[-1., -2., -1., -3.], [4., 0., 0., 1.], [0., 1., 1., 2.]]])


def test_max_over_k_by_hand():
    x = torch.tensor([[1., 3., 3., 0.], [0., 5., 1., 2.], [2., 2., 2., 2.]], requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        values = lean_grad.MaxOverK.apply(x)
    assert values.tolist() == [3., 5., 2.]
    # kept: the winners as uint8 (any of a tied row's), and the two tied
    # rows' masks and counts
    index, ties, counts = saved
    assert index.dtype == torch.uint8 and index[1] == 1 and index[0] in (1, 2)
    assert ties.tolist() == [[False, True, True, False], [True] * 4]
    assert counts.tolist() == [2, 4]
    values.sum().backward()
    # all of it to the winner; a tie split evenly, as amax splits it
    assert x.grad.tolist() == [[0., .5, .5, 0.], [0., 1., 0., 0.], [.25, .25, .25, .25]]


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_max_over_k_equals_amax_bit_for_bit(dtype):
    gen = torch.Generator().manual_seed(0)
    # bfloat16 rounds many of these to equal values: ties everywhere
    rand = torch.randn(2, 5, 7, 3, 10, generator=gen).mul(0.05).round(decimals=2)
    for scores in (TIED.to(dtype), rand.to(dtype)):
        values, (grad,) = grads(lean_grad.MaxOverK.apply, scores)
        expected_values, (expected,) = grads(lambda s: s.amax(dim=-1), scores)
        assert torch.equal(values, expected_values)
        assert torch.equal(grad, expected)


def test_class_scores_under_autocast_match_plain_autograd():
    gen = torch.Generator().manual_seed(1)
    emb = F.normalize(torch.randn(2, 8, 3, 4, generator=gen), dim=1)
    sub = F.normalize(torch.randn(3, 4, 8, generator=gen), dim=-1)
    active = torch.tensor([[True, True, False, False], [True] * 4, [True, False, False, False]])

    def scores(e):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return dnc_core.class_scores(dnc_core.subcentroid_scores(e, sub), 3, active)
    values, (grad,) = grads(scores, emb)
    with lean_grad.plain_autograd():
        plain_values, (plain,) = grads(scores, emb)
    assert values.dtype == torch.bfloat16
    assert torch.equal(values, plain_values) and torch.equal(grad, plain)


def as_maps(rows):
    """(N, D) unit embeddings as the source of a (1, D, N, 1) map's rows."""
    return dnc_core.EmbeddingSource(rows.t()[None, :, :, None])


def ppc_case(mask=None):
    gen = torch.Generator().manual_seed(2)
    n, d, c, k = 40, 6, 3, 4
    emb = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    weights = F.normalize(torch.randn(c * k, d, generator=gen), dim=1)
    index = torch.tensor([i for i in range(n) if i % 3])  # some pixels unlabelled
    target = torch.randint(0, c * k, (index.numel(),), generator=gen)
    if mask is not None:
        target = torch.tensor([t if mask[t] else 0 for t in target.tolist()])
    return emb, weights, index, target


@pytest.mark.parametrize('chunk', [2**20, 16])  # one chunk; many
@pytest.mark.parametrize('masked', [False, True])
def test_ppc_cross_entropy_gradient_equals_plain(monkeypatch, chunk, masked):
    monkeypatch.setattr(lean_grad, 'CHUNK_ELEMENTS', chunk)
    mask = torch.tensor([True, True, False, True] * 3) if masked else None
    emb, weights, index, target = ppc_case(mask=mask)

    def lean(e):
        return lean_grad.ppc_cross_entropy(e @ weights.t(), index, target, 0.1, as_maps(e),
                                           weights, mask)

    def plain(e):
        rows = (e @ weights.t())[index]
        if mask is not None:
            rows = rows.masked_fill(~mask, float('-inf'))
        return dnc_core.ppc_loss(rows, target, 0.1)
    loss, (grad,) = grads(lean, emb)
    expected_loss, (expected,) = grads(plain, emb)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)
    assert grad[~torch.isin(torch.arange(40), index)].abs().sum() == 0  # unlabelled: none


def test_ppc_cross_entropy_under_bfloat16_autocast():
    emb, weights, index, target = ppc_case()

    def loss(e):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            scores = F.linear(e, weights)  # bfloat16, as the head's convolution
            return lean_grad.ppc_cross_entropy(scores, index, target, 0.1, as_maps(e), weights)
    value, (grad,) = grads(loss, emb)
    with lean_grad.plain_autograd():
        plain_value, (plain,) = grads(loss, emb)
    torch.testing.assert_close(value, plain_value, rtol=1e-3, atol=1e-3)
    # the recomputed rows are a bfloat16 matmul like the forward's: equal up
    # to bfloat16 rounding of the softmax's inputs
    torch.testing.assert_close(grad, plain, rtol=0.02, atol=2e-3)


def test_score_conv_gradient_by_hand_keeping_only_the_weight():
    # one pixel e = (1, 0) against two sub-centroids (1, 0) and (0.6, 0.8);
    # upstream gradient (1, 2): d/de = W^T g = (1 + 1.2, 1.6)
    emb = torch.tensor([1., 0.]).view(1, 2, 1, 1).requires_grad_(True)
    weight = torch.tensor([[1., 0.], [0.6, 0.8]]).view(2, 2, 1, 1)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        scores = lean_grad.score_conv(emb, weight)
    assert scores.flatten().tolist() == pytest.approx([1.0, 0.6])
    (scores.flatten() * torch.tensor([1., 2.])).sum().backward()
    assert emb.grad.flatten().tolist() == pytest.approx([2.2, 1.6])
    assert [t.shape for t in saved] == [weight.shape]  # not the embeddings
    with lean_grad.plain_autograd(), torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t) or t, lambda t: t):
        lean_grad.score_conv(emb, weight)
    assert emb.shape in [t.shape for t in saved[1:]]  # plain autograd keeps them


@pytest.mark.parametrize('autocast', [False, True])
def test_score_conv_equals_conv2d_in_both_layouts(autocast):
    gen = torch.Generator().manual_seed(3)
    emb = F.normalize(torch.randn(2, 8, 3, 5, generator=gen), dim=1)
    weight = F.normalize(torch.randn(12, 8, generator=gen), dim=1).view(12, 8, 1, 1)
    for layout in (torch.contiguous_format, torch.channels_last):

        def scores(e):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
                return lean_grad.score_conv(e.contiguous(memory_format=layout), weight)
        values, (grad,) = grads(scores, emb)
        with lean_grad.plain_autograd():
            plain_values, (plain,) = grads(scores, emb)
        assert grad.dtype == torch.float32
        assert torch.equal(values, plain_values)
        # a convolution with the transposed weight against the convolution's
        # own backward: the same sums, maybe in another order
        tol = dict(rtol=1e-2, atol=1e-2) if autocast else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad, plain, **tol)


def test_contiguous_grad_hands_on_the_same_values_contiguous():
    weight = torch.randn(2, 4, 5, 3)

    def grad_reaching(features, through=lambda t: t):
        # the gradient as the decoder's last op sees it (a leaf's .grad would
        # be restrided to the leaf's layout by autograd)
        seen = []
        x = features.clone()
        x.register_hook(seen.append)
        # like the embedding: a permute to (B, h, w, D)
        (through(x).permute(0, 2, 3, 1) * weight).sum().backward()
        return seen[0]
    features = torch.randn(2, 3, 4, 5, requires_grad=True)
    plain = grad_reaching(features)
    assert not plain.is_contiguous()  # channels-last: what the decoder would get
    lean = grad_reaching(features, lean_grad.contiguous_grad)
    assert lean.is_contiguous()
    assert torch.equal(lean, plain)
    # the forward is the identity (no copy); outside the lean path, the tensor itself
    assert lean_grad.contiguous_grad(features).data_ptr() == features.data_ptr()
    with lean_grad.plain_autograd():
        assert lean_grad.contiguous_grad(features) is features


def saved_sizes(head, feats, samples, grads_seen=None, maps=None):
    """The sizes of the tensors the head's training step saves for its
    backward; ``maps`` collects those as large as the (B, D, h, w) features."""
    sizes = []

    def pack(t):
        sizes.append(t.numel())
        if maps is not None and t.numel() == feats.numel():
            maps.append(t)
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        inputs = feats.clone()  # not a leaf: its gradient keeps the layout it arrives in
        if grads_seen is not None:
            inputs.register_hook(grads_seen.append)
        losses = head.loss([inputs], samples, None)
    if maps is not None:
        maps.append(inputs)
    return sizes, losses


def test_head_keeps_no_ck_wide_map_and_learns_the_same(dnc_head_case):
    head, feats, samples, pixels, ck = dnc_head_case
    state = head.sub_centroids.clone()
    seen, maps = [], []
    sizes, losses = saved_sizes(head, feats, samples, seen, maps)
    sum(v for n, v in losses.items() if n.startswith('loss')).backward()
    lean_grad_feats = feats.grad.clone()
    assert max(sizes) < pixels * ck  # nothing as wide as the C*K scores
    # of the D-wide maps, only the features (which the 1x1 conv keeps too):
    # the score convolution and PPC keep no embedding map
    inputs = maps.pop()
    assert maps and all(t.untyped_storage().data_ptr() == inputs.untyped_storage().data_ptr()
                        for t in maps)
    # the decoder's features get a gradient in their own layout (the
    # channels-last embedding would otherwise hand back a channels-last one)
    assert seen[0].is_contiguous()
    # the same step with plain autograd keeps them (the test can fail), and
    # gives the same gradient
    feats.grad = None
    head.sub_centroids.copy_(state)
    with lean_grad.plain_autograd():
        sizes, losses = saved_sizes(head, feats, samples)
        sum(v for n, v in losses.items() if n.startswith('loss')).backward()
    assert max(sizes) >= pixels * ck
    torch.testing.assert_close(lean_grad_feats, feats.grad, rtol=1e-5, atol=1e-9)


@pytest.fixture
def dnc_head_case():
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    import mmseg_dnc  # noqa: F401
    register_all_modules()
    c, k, d, b, h = 20, 10, 16, 2, 6  # C*K = 200 scores against D = 16
    torch.manual_seed(0)
    head = MODELS.build(dict(type='DNCDecodeHead', decoder='FCNHead', in_channels=d, channels=d,
                             num_convs=0, concat_input=False, num_classes=c, dropout_ratio=0.0,
                             num_subcentroids=k, subcentroid_init='random'))
    head.train()
    feats = torch.randn(b, d, h, h, requires_grad=True)
    samples = []
    for _ in range(b):
        label = torch.randint(0, c, (1, 2 * h, 2 * h))
        label[:, :2] = 255
        s = SegDataSample(gt_sem_seg=PixelData(data=label))
        s.set_metainfo(dict(img_shape=(2 * h, 2 * h), pad_shape=(2 * h, 2 * h)))
        samples.append(s)
    return head, feats, samples, b * h * h, c * k
