"""``DNCDecodeHead``: an mmseg decode head whose final 1x1 conv is replaced by
a nearest-sub-centroid classifier (Deep Nearest Centroids, ICLR 2023).

The user's contract: in the decode head of any mmseg config set
``type='DNCDecodeHead'`` and ``decoder=`` the type it had (``'FCNHead'``,
``'ASPPHead'``, ``'UPerHead'``, ...); every other key stays as it was.

Building ``DNCDecodeHead(decoder='ASPPHead', ...)`` returns an instance of a
class derived from both this class and ``ASPPHead`` (named ``DNCASPPHead``),
so the decoder's modules, state_dict keys and ``forward`` are exactly mmseg's,
and only ``cls_seg`` (and the training step) differ. ``cls_seg`` is the seam:
nearly every mmseg head ends its ``forward`` in it, whatever it does before
(DeepLabV3+, SegFormer, OCR, SegNeXt, ...).

Shape legend: B batch, C classes, K sub-centroids per class, D embedding
width (the decoder's ``channels``), h, w feature size, N = B*h*w, M labelled
pixels.
"""
import inspect
import logging
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from . import dnc_core, lean_grad
from . import state_transfer
from .build_checks import (check_out_channels, check_settings, derived_class,
                           resolve_decoder, without_conv_seg)
from .learning_step import (LearningSettings, SubcentroidState, assign_and_update,
                            check_label_range, labelled_pixels, learning_losses,
                            register_learning_buffers)
from .projection import build_projection


class Classified(NamedTuple):
    """What one ``cls_seg`` call computed."""
    # (B, D, h, w) unit embeddings; None in the training step's lean path,
    # which keeps `source` instead (``DNCDecodeHead.classified``)
    embeddings: Optional[Tensor]
    sub_scores: Tensor  # (B, C*K, h, w) cosine to every sub-centroid
    logits: Tensor  # (B, C, h, w) class logits
    sub_centroids: Tensor  # (C, K, D) what was scored against (a copy while training)
    source: dnc_core.EmbeddingSource  # the embeddings by row, or what they come from


def dnc_class_for(decoder_cls: type) -> type:
    """The class ``DNC<decoder>`` (``build_checks.derived_class``), published
    in this module so that instances pickle by reference."""
    return derived_class(DNCDecodeHead, decoder_cls, sys.modules[__name__])


def __getattr__(name: str):
    """Recreate ``DNC<decoder>`` classes on demand (unpickling in a new process)."""
    if name.startswith('DNC') and name != 'DNCDecodeHead':
        decoder_cls = MODELS.get(name[3:])
        if decoder_cls is not None:
            return dnc_class_for(decoder_cls)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


@MODELS.register_module()
class DNCDecodeHead(BaseDecodeHead):
    """Deep Nearest Centroids classifier on top of an mmseg decoder.

    Args (README's settings table says what each does and its evidence;
    ``build_checks.check_settings`` what each accepts):
        decoder (str | type): the decode head type to build on, e.g.
            ``'ASPPHead'``; its own keyword arguments pass through unchanged.
        num_subcentroids (int | Sequence[int]): K, for all classes or one per
            class. Default 10 (the paper's).
        momentum, sinkhorn_epsilon, sinkhorn_iterations: the update
            ``p <- normalise(m p + (1 - m) mean)`` and its Sinkhorn assignment
            (0.999, 0.05, 3: the paper's).
        update_from (str): learn from ``'correct'`` pixels (the reference),
            ``'all'``, or ``'correct_or_all'``.
        update_assignment (str): the sub-centroid a pixel moves: the Sinkhorn
            argmax (``'sinkhorn_argmax'``) or ProtoSeg's ``'gumbel_sample'``.
        loss_ppc_weight, loss_ppd_weight, ppc_temperature: the
            pixel-prototype contrastive and distance losses (0.01, 0.001, 0.1).
        score_norm, score_temperature: ``'layernorm'`` over the C class
            scores (the reference) or ``'temperature'``.
        projection (bool | str): ``'conv_relu_conv'`` (ProtoSeg's),
            ``'conv_norm_relu_conv'`` (True), or False (none, DNC's).
        memory_size, memory_per_step (int): per-class FIFO memory (0 = off).
        subcentroid_init (str): ``'kmeans++'`` (default): seeds among a
            class's own pixels; ``'random'`` (the reference): random vectors.
        momentum_warmup (bool): momentum ``min(m, (1+n)/(10+n))`` after n updates.
        restart_dead_below, restart_dead_every, restart_on: restart
            sub-centroids that win under this fraction of their fair share.
        **kwargs: the decoder's own (in_channels, channels, num_classes, ...).
    """

    # the cls_seg calls recorded while classified() listens; None otherwise
    _classified = None
    # whether those records keep the embedding map (classified()'s argument)
    _keep_embeddings = True

    def __new__(cls, *args, decoder=None, **kwargs):
        if cls is DNCDecodeHead:
            named = MODELS.get(decoder) if isinstance(decoder, str) and decoder.strip() \
                else decoder
            if isinstance(named, type) and issubclass(named, DNCDecodeHead):
                raise TypeError(f'DNCDecodeHead(decoder={named.__name__!r}): it is '
                                'already a DNC head; give the decoder it extends.')
            cls = dnc_class_for(resolve_decoder(decoder))
        return super().__new__(cls)

    def __init__(self,
                 decoder: Union[str, type],
                 num_subcentroids: Union[int, Sequence[int]] = 10,
                 momentum: float = 0.999,
                 sinkhorn_epsilon: float = 0.05,
                 sinkhorn_iterations: int = 3,
                 update_from: str = 'correct',
                 loss_ppc_weight: float = 0.01,
                 loss_ppd_weight: float = 0.001,
                 ppc_temperature: float = 0.1,
                 score_norm: str = 'layernorm',
                 score_temperature: float = 0.1,
                 projection: Union[bool, str] = False,
                 memory_size: int = 0,
                 memory_per_step: int = 64,
                 subcentroid_init: str = 'kmeans++',
                 momentum_warmup: bool = False,
                 restart_dead_below: float = 0.0,
                 restart_dead_every: int = 50,
                 restart_on: str = 'worst',
                 update_assignment: str = 'sinkhorn_argmax',
                 **kwargs):
        settings = dict(locals())  # the DNC settings: every argument but these
        for name in ('self', 'decoder', 'kwargs', '__class__'):
            settings.pop(name, None)
        per_class = check_settings(num_classes=kwargs.get('num_classes'), **settings)
        super().__init__(**kwargs)
        check_out_channels(self.out_channels, self.num_classes)
        # The 1x1 conv is what DNC replaces: no weights to train, none in the
        # state_dict, and no parameter without gradient to upset DDP.
        del self.conv_seg
        self.init_cfg = without_conv_seg(self.init_cfg)

        self.decoder_type = type(self).__bases__[1].__name__  # DNC<decoder>(DNCDecodeHead, decoder)
        self.learning = LearningSettings(
            num_subcentroids=per_class, momentum=momentum, sinkhorn_epsilon=sinkhorn_epsilon,
            sinkhorn_iterations=sinkhorn_iterations, update_from=update_from,
            restart_dead_below=restart_dead_below, restart_dead_every=restart_dead_every,
            restart_on=restart_on, memory_per_step=memory_per_step,
            update_assignment=update_assignment)
        self.loss_ppc_weight = loss_ppc_weight
        self.loss_ppd_weight = loss_ppd_weight
        self.ppc_temperature = ppc_temperature
        self.score_temperature = score_temperature
        self.subcentroid_init = subcentroid_init

        dim = self.channels
        self.projection = build_projection(projection, dim, self.conv_cfg, self.norm_cfg,
                                           self.act_cfg)
        self.feature_norm = nn.LayerNorm(dim)
        self.score_norm = nn.LayerNorm(self.num_classes) \
            if score_norm == 'layernorm' else None

        k_max = max(per_class)
        self.num_subcentroids = per_class
        self.register_buffer('sub_centroids', self._random_subcentroids(k_max, dim))
        # (C, K) bool, the slots each class uses: all of them unless K is per class
        self.register_buffer('used_slots', torch.arange(k_max)[None, :] < torch.tensor(
            per_class)[:, None], persistent=False)
        self.k_per_class = min(per_class) < k_max
        # (M,) sub-centroid of each labelled pixel in the last training step,
        # for hooks that watch the clustering; not state
        self.last_assignment = None
        # True while SnapSubcentroidsHook holds the sub-centroids at real
        # pixels: the step assigns (PPC/PPD targets) but moves nothing
        self.subcentroids_fixed = False
        register_learning_buffers(self, per_class, dim, subcentroid_init == 'kmeans++',
                                  momentum_warmup, restart_dead_below > 0, memory_size)

    @property
    def slot_mask(self) -> Optional[Tensor]:
        """``used_slots`` for the scoring functions, or None when every slot
        is used (which spares them a masked copy of the C*K-wide scores)."""
        return self.used_slots if self.k_per_class else None

    def _random_subcentroids(self, k_max: int, dim: int) -> Tensor:
        """(C, K, D) random unit vectors: the sub-centroids before training."""
        return F.normalize(torch.randn(self.num_classes, k_max, dim), dim=-1)

    def class_state(self) -> Dict[str, Tensor]:
        """The state of this model's classes (``state_transfer.class_state``)."""
        return state_transfer.class_state(self)

    def enable_pixel_sources(self) -> None:
        """Register ``subcentroid_source`` (C, K, 3) int64, all -1: the
        provenance (image, y, x) of sub-centroids snapped to real pixels."""
        if self.subcentroid_source is None:
            self.subcentroid_source = torch.full(self.sub_centroids.shape[:2] + (3,), -1,
                                                 dtype=torch.long,
                                                 device=self.sub_centroids.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints of other heads, other classes or older versions are
        # made loadable here, each change said in one line (state_transfer)
        if prefix + 'subcentroid_source' in state_dict:
            self.enable_pixel_sources()  # a classifier of real pixels: keep its provenance
        for message in state_transfer.adapt_state_dict(self, state_dict, prefix):
            print_log(message, logger='current', level=logging.WARNING)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        k = self.num_subcentroids[0] if not self.k_per_class else self.num_subcentroids
        return (f'{super().extra_repr()}, decoder={self.decoder_type}, '
                f'num_subcentroids={k}, momentum={self.learning.momentum}')

    # ---------------------------------------------------------------- forward
    def embed(self, feat: Tensor) -> Tensor:
        """(B, channels, h, w) decoder features -> (B, D, h, w) unit embeddings."""
        return self._normalise(self._embedding_input(feat))

    def _embedding_input(self, feat: Tensor) -> Tensor:
        """The decoder's features after dropout and the projection: what the
        embedding normalises, (B, D, h, w)."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        if self.projection is not None:
            feat = self.projection(feat)
        return feat

    def _norm(self) -> Tuple[Tensor, Tensor, float]:
        return self.feature_norm.weight, self.feature_norm.bias, self.feature_norm.eps

    def _normalise(self, feat: Tensor) -> Tensor:
        """``dnc_core.embed`` with the head's LayerNorm."""
        if lean_grad.lean(feat):
            # recomputed in the backward: keeps `feat` (which the 1x1 conv
            # keeps too), not the normalised map between (issue 23)
            return checkpoint(dnc_core.embed, lean_grad.contiguous_grad(feat), *self._norm(),
                              use_reentrant=False, preserve_rng_state=False)
        return dnc_core.embed(feat, *self._norm())

    def logits_from_scores(self, sub_scores: Tensor, memory_format=torch.contiguous_format,
                           active: Optional[Tensor] = None) -> Tensor:
        """(B, C*K, h, w) sub-centroid scores -> (B, C, h, w) class logits in
        ``memory_format``: the layout a conv's output would have, the
        features' (mmseg's loss, resize and argmax are slow on the other).
        ``active``: (C, K) bool, the slots each class's max runs over; None:
        the used ones (e.g. ``bench/camvid_subcentroid_errors.py`` leaves one
        out to see what it decides)."""
        scores = dnc_core.class_scores(sub_scores, self.num_classes,
                                       self.slot_mask if active is None else active)
        if self.score_norm is None:
            return (scores / self.score_temperature).contiguous(memory_format=memory_format)
        scores = scores.permute(0, 2, 3, 1)  # (B, h, w, C): a free view
        # the norm's own (static) shape, not the tensor's: exporters with
        # dynamic H, W trace a tensor's shape as a runtime value
        scores = F.layer_norm(scores, self.score_norm.normalized_shape, self.score_norm.weight,
                              self.score_norm.bias, self.score_norm.eps)
        return scores.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Nearest-sub-centroid classification: (B, channels, h, w) -> (B, C, h, w).

        The seam: the decoder's own ``forward`` ends in this call, whatever it
        does before. While :meth:`classified` listens, each call also records
        its embeddings and scores, so the training step learns from exactly
        what was classified, with no second forward pass.
        """
        if feat.shape[1] != self.channels:
            raise ValueError(
                f'{type(self).__name__}.cls_seg got features {tuple(feat.shape)}; DNC '
                f'embeds `channels`={self.channels}. The decoder {self.decoder_type} calls '
                "cls_seg on another width: it cannot carry DNC; keep it parametric, or use a "
                "head that README's table marks 'trains'.")
        sub_centroids = self.sub_centroids
        if self._classified is not None and torch.is_grad_enabled():
            # a copy: backward needs the scores' weights as they were before
            # the in-place update of the training step
            sub_centroids = sub_centroids.clone()
        embedding_input = self._embedding_input(feat)
        embeddings = self._normalise(embedding_input)
        sub_scores = dnc_core.subcentroid_scores(embeddings, sub_centroids)
        source = None
        if self._classified is not None:
            if self._keep_embeddings or not lean_grad.lean(embedding_input):
                source = dnc_core.EmbeddingSource(embeddings)
            else:
                # the features the embedding normalised, which its backward
                # keeps anyway; the (B, D, h, w) embeddings are freed here,
                # before the max over K (issue 23)
                source = dnc_core.EmbeddingSource(embedding_input, self._norm())
                embeddings = None
        # channels-last features (ChannelsLastSegDataPreProcessor) get
        # channels-last logits, as the 1x1 conv would give them
        layout = torch.channels_last if feat.is_contiguous(
            memory_format=torch.channels_last) and not feat.is_contiguous() \
            else torch.contiguous_format
        logits = self.logits_from_scores(sub_scores, layout)
        if source is not None:
            self._classified.append(Classified(embeddings, sub_scores, logits,
                                                sub_centroids, source))
        return logits

    @contextmanager
    def classified(self, keep_embeddings: bool = True) -> Iterator[List['Classified']]:
        """Within the block, each ``cls_seg`` call appends its :class:`Classified`.

        Args:
            keep_embeddings (bool): False: on the lean training path the
                records hold the features rather than the (B, D, h, w) unit
                embeddings (``embeddings`` None; ``source`` re-embeds the rows
                a step reads), so the map is freed once scored, before the
                max over K and the decoder's loss, where a training step's
                memory peaks (issue 23).
        """
        if self._classified is not None:
            raise RuntimeError(f'{type(self).__name__}.classified() does not nest.')
        calls = []
        self._classified, self._keep_embeddings = calls, keep_embeddings
        try:
            yield calls
        finally:
            self._classified, self._keep_embeddings = None, True

    def classify(self, inputs, *args) -> 'Classified':
        """The decoder's forward on ``inputs`` (and ``prev_output`` for a
        cascade stage), returning what its ``cls_seg`` computed."""
        with self.classified() as calls:
            self.forward(inputs, *args)
        return self._one_call(calls, 'forward')

    def _one_call(self, calls: List['Classified'], where: str) -> 'Classified':
        if len(calls) != 1:
            raise RuntimeError(
                f'{type(self).__name__}: the {self.decoder_type} {where} called cls_seg '
                f'{len(calls)} times; DNC learns from exactly one classification per '
                "step, so this decoder cannot carry it: keep it parametric, or use a head "
                "that README's table marks 'trains'.")
        return calls[0]

    @torch.no_grad()
    def predict_subcentroids(self, inputs, *args) -> Tuple[Tensor, Tensor]:
        """Logits (B, C, h, w) and nearest (B, C, h, w) int64 in [0, K):
        ``nearest[:, c]``, class c's sub-centroid closest to each pixel (the
        one that decides its score). Takes ``forward``'s arguments."""
        out = self.classify(inputs, *args)
        nearest = dnc_core.nearest_subcentroid(out.sub_scores, self.num_classes,
                                               self.slot_mask)
        return out.logits, nearest

    # --------------------------------------------------------------- training
    def loss(self, *args, **kwargs) -> dict:
        """The decoder's own ``loss`` (every classifier it trains keeps its
        loss), plus ``loss_ppc`` and ``loss_ppd`` on what ``cls_seg``
        classified; moves the sub-centroids one momentum step. Takes the
        decoder's arguments (``prev_output`` too for a cascade stage)."""
        decoder_loss = super().loss
        samples = inspect.signature(decoder_loss).bind(*args, **kwargs).arguments.get(
            'batch_data_samples')
        if samples is None:
            raise TypeError(f'{type(self).__name__}.loss: no batch_data_samples among '
                            'its arguments.')
        # BaseDecodeHead's: PIDHead's own also stacks the edge maps
        seg_label = BaseDecodeHead._stack_batch_gt(self, samples)
        check_label_range(seg_label, self.num_classes, self.ignore_index, samples)
        with self.classified(keep_embeddings=False) as calls:
            losses = decoder_loss(*args, **kwargs)
        out = self._one_call(calls, 'training step')
        losses.update(self.learn_subcentroids(out.source, out.sub_scores, out.logits,
                                              seg_label, out.sub_centroids))
        return losses

    def learn_subcentroids(self, embeddings: Union[Tensor, dnc_core.EmbeddingSource],
                           sub_scores: Tensor, seg_logits: Tensor, seg_label: Tensor,
                           scored_against: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Assign labelled pixels to sub-centroids, update them (in place),
        and return the PPC and PPD losses (learning_step.py).

        Args:
            embeddings (Tensor | dnc_core.EmbeddingSource): (B, D, h, w) unit
                embeddings, or (``Classified.source``) what they come from.
            sub_scores (Tensor): (B, C*K, h, w) their sub-centroid scores.
            seg_logits (Tensor): (B, C, h, w) class logits.
            seg_label (Tensor): (B, 1, H, W) ground truth at input size,
                checked (``check_label_range``).
            scored_against (Tensor, optional): (C, K, D) the sub-centroids
                ``sub_scores`` came from (the PPC backward recomputes them);
                default: the current ones, before this step moves them.
        """
        if scored_against is None:
            scored_against = self.sub_centroids.clone()
        pixels = labelled_pixels(embeddings, sub_scores, seg_logits, seg_label,
                                 self.ignore_index, self.num_classes)
        assignment = self.assign_and_update(pixels.x, pixels.y, pixels.own, pixels.correct)
        self.last_assignment = assignment
        return learning_losses(pixels, assignment, sub_scores, embeddings, scored_against,
                               self.slot_mask, self.loss_ppc_weight, self.loss_ppd_weight,
                               self.ppc_temperature)

    def assign_and_update(self, x: Tensor, y: Tensor, own: Tensor, correct: Tensor) -> Tensor:
        """One learning step on this head's buffers: (M, D) embeddings, (M,)
        classes, (M, K) own-class scores, (M,) correct -> (M,) assignment."""
        return assign_and_update(SubcentroidState.of(self), self.learning, x, y, own, correct,
                                 fixed=self.subcentroids_fixed)
