"""Memory-lean gradients of the head's training operations (issue 23).

Shape legend as in ``dnc_core``: B batch, C classes, K sub-centroids per class,
D embedding width, h, w feature-map size, M labelled pixels.

The plain autograd of the head's training step keeps two (pixels x C*K) maps
alive from the forward to the backward, where the 1x1 conv it replaces keeps a
C-wide one:

- ``amax`` over K saves its whole (B, h, w, C, K) input, to find the winners
  again in the backward. :class:`MaxOverK` saves which sub-centroid won for
  each pixel and class instead (uint8 when K <= 255), plus the few rows where
  several tie for the maximum.
- PPC's cross-entropy over the C*K scores of the labelled pixels gathers an
  (M, C*K) copy of them and saves its log-softmax. :class:`PPCCrossEntropy`
  reads the rows from the scores a chunk at a time, saves only indices, and
  recomputes the rows in the backward, a chunk at a time, from the
  sub-centroids and the pixels' embeddings, themselves recomputed from the
  decoder's features (``dnc_core.EmbeddingSource``).

And one D-wide map: the score convolution keeps its input, the (B, D, h, w)
unit embeddings, though its backward needs only the sub-centroids (buffers:
no gradient). :class:`ScoreConv` keeps the (C*K, D) weight alone, so the
head holds the decoder's features (which the 1x1 conv holds too) and no
embedding map (the embedding itself is recomputed in the backward).

All give the gradients plain autograd gives: ``MaxOverK`` bit for bit, ties
split evenly as ``amax`` splits them; ``PPCCrossEntropy`` and ``ScoreConv``
to float rounding (the recomputed scores are a matmul, the forward's a
convolution; the transposed convolution sums in its own order).
:func:`contiguous_grad` is for speed, not memory: it hands the decoder its
features' gradient in their own layout, not the channels-last one the
embedding makes. Tests: tests/test_lean_grad.py.
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

# elements of an (rows, C*K) chunk of PPC's scores: 4 MiB of float32
CHUNK_ELEMENTS = 2**20
_LEAN = [True]


@contextmanager
def plain_autograd() -> Iterator[None]:
    """Within the block the head trains with plain autograd (the bench's
    and the tests' yardstick): same values, the memory of before."""
    _LEAN.append(False)
    try:
        yield
    finally:
        _LEAN.pop()


def lean(tensor: Tensor) -> bool:
    """Whether an operation on ``tensor`` takes the lean backward: a
    gradient is wanted, :func:`plain_autograd` is not in force, and no
    exporter is tracing (which would record an opaque Function, not the
    1x1 conv K times wider plus a max)."""
    return (_LEAN[-1] and torch.is_grad_enabled() and tensor.requires_grad
            and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export())


def index_dtype(k: int) -> torch.dtype:
    """The smallest integer dtype that holds a sub-centroid index in [0, K)."""
    return torch.uint8 if k <= 256 else torch.int16


class MaxOverK(torch.autograd.Function):
    """(..., K) scores -> (...,) their maximum, saving the winner's index.

    The gradient equals ``amax``'s: all of it to the winner, or split evenly
    among the entries tied for the maximum."""

    @staticmethod
    def forward(ctx, scores: Tensor) -> Tensor:
        k = scores.shape[-1]
        values, index = scores.max(dim=-1)
        # a one-byte (..., K) temporary, counted without a wider copy
        winners = scores == values.unsqueeze(-1)
        count = winners.view(torch.uint8).sum(dim=-1, dtype=index_dtype(k + 1))
        rows = (count > 1).nonzero(as_tuple=True)
        ties = winners[rows]  # (tied rows, K)
        del winners
        ctx.shape = scores.shape
        ctx.tied_rows = rows
        ctx.save_for_backward(index.to(index_dtype(k)), ties, count[rows])
        return values

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, tie_mask, tie_count = ctx.saved_tensors
        grad_in = grad.new_zeros(ctx.shape)
        grad_in.scatter_(-1, index.long().unsqueeze(-1), grad.unsqueeze(-1))
        if tie_count.numel():
            share = grad[ctx.tied_rows] / tie_count.to(grad.dtype)
            grad_in[ctx.tied_rows] = share.unsqueeze(-1) * tie_mask.to(grad.dtype)
        return grad_in


def max_over_k(scores: Tensor) -> Tensor:
    """``scores.amax(dim=-1)``, keeping an index rather than ``scores`` for
    the backward when a gradient is needed."""
    if lean(scores):
        return MaxOverK.apply(scores)
    return scores.amax(dim=-1)


class ScoreConv(torch.autograd.Function):
    """``F.conv2d(embeddings, weight)`` for a 1x1 ``weight`` that needs no
    gradient, saving only ``weight``: the gradient of the embeddings is the
    1x1 convolution of the scores' gradient with the transposed weight."""

    @staticmethod
    def forward(ctx, embeddings: Tensor, weight: Tensor) -> Tensor:
        ctx.input_dtype = embeddings.dtype
        ctx.save_for_backward(weight)
        # under autocast, as the plain convolution: both in the autocast dtype
        return F.conv2d(embeddings, weight.to(embeddings.dtype))

    @staticmethod
    def backward(ctx, grad: Tensor):
        weight, = ctx.saved_tensors
        grad_in = F.conv2d(grad, weight.to(grad.dtype).transpose(0, 1))
        return grad_in.to(ctx.input_dtype), None


def score_conv(embeddings: Tensor, weight: Tensor) -> Tensor:
    """The head's score convolution, (B, D, h, w) x (C*K, D, 1, 1) -> (B, C*K,
    h, w), keeping the (C*K, D) weight rather than the embeddings for the
    backward when only the embeddings need a gradient (the sub-centroids are
    buffers)."""
    if lean(embeddings) and not weight.requires_grad:
        return ScoreConv.apply(embeddings, weight)
    return F.conv2d(embeddings, weight.to(embeddings.dtype))


class ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward hands on a contiguous gradient.

    The embedding runs channels-last (LayerNorm over D), so the gradient it
    sends back to the decoder's (contiguous) features is channels-last; the
    decoder's ReLU and dropout backward then mix layouts and take a slow
    path (5x slower for the CamVid model's (4, 128, 60, 80) features). One
    copy here is cheaper."""

    @staticmethod
    def forward(ctx, features: Tensor) -> Tensor:
        return features.view_as(features)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous()


def contiguous_grad(features: Tensor) -> Tensor:
    """``features``, with a contiguous gradient in the backward (lean path only)."""
    if lean(features) and features.is_contiguous():
        return ContiguousGrad.apply(features)
    return features


def _masked(rows: Tensor, slot_mask: Optional[Tensor]) -> Tensor:
    """(rows, C*K) scores with the unused slots at -inf."""
    return rows if slot_mask is None else rows.masked_fill(~slot_mask, float('-inf'))


def _chunks(m: int, width: int):
    step = max(1, CHUNK_ELEMENTS // width)
    return (slice(start, start + step) for start in range(0, m, step))


class PPCCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``scores[index] / temperature`` against
    ``target``, a chunk of rows at a time; the backward recomputes the rows
    as ``source.rows(index) @ weights.T`` (``dnc_core.EmbeddingSource``)
    rather than keeping their softmax."""

    @staticmethod
    def forward(ctx, scores: Tensor, index: Tensor, target: Tensor, temperature: float,
                source, weights: Tensor, slot_mask: Optional[Tensor]) -> Tensor:
        total = scores.new_zeros((), dtype=torch.float32)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            for part in _chunks(index.numel(), scores.shape[1]):
                rows = _masked(scores[index[part]], slot_mask).float() / temperature
                picked = rows.gather(1, target[part, None]).squeeze(1)
                total += (torch.logsumexp(rows, dim=1) - picked).sum()
        ctx.temperature = temperature
        ctx.scores_shape, ctx.scores_dtype = scores.shape, scores.dtype
        # the source's tensors as saved tensors (hooks and version checks see
        # them); its type and eps as they are
        norm = source.norm if source.norm is not None else (None, None, None)
        ctx.source_type, ctx.eps = type(source), norm[2]
        ctx.save_for_backward(index, target, source.maps, norm[0], norm[1], weights,
                              slot_mask)
        return total / index.numel()

    @staticmethod
    def backward(ctx, grad: Tensor):
        index, target, maps, norm_weight, norm_bias, weights, slot_mask = ctx.saved_tensors
        source = ctx.source_type(maps, None if norm_weight is None else
                                 (norm_weight, norm_bias, ctx.eps))
        dtype = ctx.scores_dtype
        grad_scores = torch.zeros(ctx.scores_shape, dtype=dtype, device=grad.device)
        scale = grad.float() / (index.numel() * ctx.temperature)
        weights_t = weights.to(dtype).t()
        with torch.autocast(device_type=grad.device.type, enabled=False):
            for part in _chunks(index.numel(), weights.shape[0]):
                pixels = index[part]
                rows = _masked(source.rows(pixels).to(dtype) @ weights_t, slot_mask)
                probs = torch.softmax(rows.float() / ctx.temperature, dim=1)
                probs[torch.arange(pixels.numel(), device=probs.device), target[part]] -= 1.0
                grad_scores[pixels] = (probs * scale).to(dtype)
        return grad_scores, None, None, None, None, None, None


def ppc_cross_entropy(scores: Tensor, index: Tensor, target: Tensor, temperature: float,
                      source, weights: Tensor, slot_mask: Optional[Tensor] = None) -> Tensor:
    """PPC's cross-entropy over the labelled pixels' C*K scores,
    ``dnc_core.ppc_loss(scores[index], target, temperature)`` (unused slots
    at -inf), with neither the (M, C*K) rows nor their softmax kept.

    Args:
        scores (Tensor): (N, C*K) scores of all pixels.
        index (Tensor): (M,) int64, the labelled pixels (distinct).
        target (Tensor): (M,) their sub-centroid targets.
        source (dnc_core.EmbeddingSource): the pixels' unit embeddings, the
            scores' source, by row (the backward's).
        weights (Tensor): (C*K, D) the sub-centroids the scores used.
        slot_mask (Tensor, optional): (C*K,) bool, the used slots.
    """
    if lean(scores):
        return PPCCrossEntropy.apply(scores, index, target, temperature, source.detach(),
                                     weights.detach(), slot_mask)
    with torch.autocast(device_type=scores.device.type, enabled=False):
        return F.cross_entropy(_masked(scores[index], slot_mask).float() / temperature, target)
