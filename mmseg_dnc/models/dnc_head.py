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
import math
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.logging import print_log
from torch import Tensor

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from . import dnc_core
from . import state_transfer
from . import subcentroid_learning as learning
from .build_checks import check_settings, resolve_decoder, without_conv_seg
from .provenance import check_source_table
from .subcentroid_memory import enqueue_, stored_entries

_DNC_CLASSES: Dict[type, type] = {}


class Classified(NamedTuple):
    """What one ``cls_seg`` call computed."""
    embeddings: Tensor  # (B, D, h, w) unit embeddings
    sub_scores: Tensor  # (B, C*K, h, w) cosine to every sub-centroid
    logits: Tensor  # (B, C, h, w) class logits


def dnc_class_for(decoder_cls: type) -> type:
    """The class ``DNC<decoder>``, deriving from DNCDecodeHead and the decoder.

    It is made once per decoder and published in this module, so instances
    can be pickled by reference.
    """
    if decoder_cls not in _DNC_CLASSES:
        name = f'DNC{decoder_cls.__name__}'
        cls = type(decoder_cls)(name, (DNCDecodeHead, decoder_cls), {
            '__module__': __name__, '__qualname__': name,
            '__doc__': f'{decoder_cls.__name__} with a DNC classifier; see DNCDecodeHead.'})
        _DNC_CLASSES[decoder_cls] = cls
        setattr(sys.modules[__name__], name, cls)
    return _DNC_CLASSES[decoder_cls]


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

    Args:
        decoder (str | type): the decode head type to build on, e.g.
            ``'ASPPHead'``; its own keyword arguments pass through unchanged.
        num_subcentroids (int | Sequence[int]): K, for all classes or one per
            class. Default 10 (the paper's segmentation setting).
        momentum (float): momentum of the sub-centroid update, in [0, 1).
        sinkhorn_epsilon (float): entropy of the Sinkhorn plan, > 0.
        sinkhorn_iterations (int): Sinkhorn-Knopp iterations, >= 1.
        update_from (str): ``'correct'`` (default, the reference): update
            from pixels the current prediction gets right; ``'all'``: from
            every labelled pixel.
        loss_ppc_weight (float): weight of the pixel-prototype contrastive
            loss (``loss_ppc``). Default 0.01.
        loss_ppd_weight (float): weight of the pixel-prototype distance loss
            (``loss_ppd``). Default 0.001.
        ppc_temperature (float): temperature of the PPC logits.
        score_norm (str): ``'layernorm'`` (default, the reference): LayerNorm
            with learnable affine over the C class scores; ``'temperature'``:
            class scores divided by ``score_temperature``.
        score_temperature (float): used with ``score_norm='temperature'``.
        projection (bool): ProtoSeg's projection (1x1 conv, norm, ReLU, 1x1
            conv) before the embedding; off by default, as in DNC.
        memory_size (int): slots per class of the FIFO memory of recent
            embeddings that Sinkhorn clusters with the batch; 0 (default) = off.
        memory_per_step (int): most pixels per class written per step.
        subcentroid_init (str): ``'kmeans++'`` (default): a class's
            sub-centroids are k-means++ seeds among its own pixel embeddings,
            the first time a batch holds at least K of them (until then the
            class is unseeded); ``'random'`` (the reference): random unit
            vectors. At the paper's schedules the two meet (after n updates
            the start weighs 0.999^n); in short ones k-means++ is ahead
            (README, "Ablation").
        momentum_warmup (bool): each sub-centroid's momentum grows with its
            number of updates n as ``min(momentum, (1 + n) / (10 + n))``, so
            its start is forgotten in short schedules. Default False.
        restart_dead_below (float): a sub-centroid that wins (is nearest to)
            fewer than this fraction of its fair share 1/K of its class's
            pixels over ``restart_dead_every`` steps restarts on one of the
            class's pixels of the step (``restart_on``). 0 (default) = off.
        restart_dead_every (int): the window of that count, in steps.
        restart_on (str): which pixel a dead sub-centroid restarts on:
            ``'worst'`` (default) the class's worst-fitted pixels (least
            similar to all its sub-centroids); ``'random'`` pixels of the class
            drawn uniformly (torch's generator), as vector-quantize-pytorch
            replaces dead codes by batch samples.
        **kwargs: the decoder's arguments (in_channels, channels,
            num_classes, loss_decode, ...).
    """

    # the cls_seg calls recorded while classified() listens; None otherwise
    _classified = None

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
                 projection: bool = False,
                 memory_size: int = 0,
                 memory_per_step: int = 64,
                 subcentroid_init: str = 'kmeans++',
                 momentum_warmup: bool = False,
                 restart_dead_below: float = 0.0,
                 restart_dead_every: int = 50,
                 restart_on: str = 'worst',
                 **kwargs):
        per_class = check_settings(
            num_classes=kwargs.get('num_classes'), num_subcentroids=num_subcentroids,
            momentum=momentum, sinkhorn_epsilon=sinkhorn_epsilon,
            sinkhorn_iterations=sinkhorn_iterations, update_from=update_from,
            loss_ppc_weight=loss_ppc_weight, loss_ppd_weight=loss_ppd_weight,
            ppc_temperature=ppc_temperature, score_norm=score_norm,
            score_temperature=score_temperature, projection=projection,
            memory_size=memory_size, memory_per_step=memory_per_step,
            subcentroid_init=subcentroid_init, momentum_warmup=momentum_warmup,
            restart_dead_below=restart_dead_below, restart_dead_every=restart_dead_every,
            restart_on=restart_on)
        super().__init__(**kwargs)
        if self.out_channels != self.num_classes:
            raise ValueError(
                f'DNCDecodeHead: out_channels={self.out_channels} with '
                f'num_classes={self.num_classes}: a single-logit (sigmoid) head '
                'has no classes to hold sub-centroids; set out_channels='
                'num_classes (or drop it) and use a softmax loss.')
        # The 1x1 conv is what DNC replaces: no weights to train, none in the
        # state_dict, and no parameter without gradient to upset DDP.
        del self.conv_seg
        self.init_cfg = without_conv_seg(self.init_cfg)

        self.decoder_type = type(self).__bases__[1].__name__  # DNC<decoder>(DNCDecodeHead, decoder)
        self.momentum = momentum
        self.sinkhorn_epsilon = sinkhorn_epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.update_from = update_from
        self.loss_ppc_weight = loss_ppc_weight
        self.loss_ppd_weight = loss_ppd_weight
        self.ppc_temperature = ppc_temperature
        self.score_temperature = score_temperature
        self.memory_per_step = memory_per_step

        dim = self.channels
        self.projection = nn.Sequential(
            ConvModule(dim, dim, 1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                       act_cfg=self.act_cfg),
            nn.Conv2d(dim, dim, 1)) if projection else None
        self.feature_norm = nn.LayerNorm(dim)
        self.score_norm = nn.LayerNorm(self.num_classes) \
            if score_norm == 'layernorm' else None

        k_max = max(per_class)
        self.num_subcentroids = per_class
        self.register_buffer('sub_centroids', self._random_subcentroids(k_max, dim))
        if min(per_class) < k_max:
            active = torch.arange(k_max)[None, :] < torch.tensor(per_class)[:, None]
            self.register_buffer('subcentroid_active', active, persistent=False)
        else:
            self.subcentroid_active = None
        # (M,) sub-centroid of each labelled pixel in the last training step,
        # for hooks that watch the clustering; not state
        self.last_assignment = None
        # SnapSubcentroidsHook: (C, K, 3) (image, y, x) of the real training
        # pixel each sub-centroid is, -1 where none; registered by the hook,
        # or on loading a checkpoint that has it
        self.register_buffer('subcentroid_source', None)
        # True while the hook holds the sub-centroids at real pixels: the step
        # still assigns (PPC/PPD targets) but moves nothing; set by the hook
        # from the iteration, so it is not state
        self.subcentroids_fixed = False
        # learning state, saved and resumed with the sub-centroids; None (and
        # absent from the state_dict) when its mechanism is off
        self.subcentroid_init = subcentroid_init
        self.momentum_warmup = momentum_warmup
        self.restart_dead_below = restart_dead_below
        self.restart_dead_every = restart_dead_every
        self.restart_on = restart_on
        self.register_buffer('subcentroid_seeded', torch.zeros(
            self.num_classes, dtype=torch.bool) if subcentroid_init == 'kmeans++' else None)
        self.register_buffer('subcentroid_updates', torch.zeros(
            self.num_classes, k_max) if momentum_warmup else None)
        restart = restart_dead_below > 0
        self.register_buffer('subcentroid_wins',
                             torch.zeros(self.num_classes, k_max) if restart else None)
        self.register_buffer('restart_window_step',
                             torch.zeros((), dtype=torch.long) if restart else None)
        if memory_size > 0:
            self.register_buffer('memory', torch.zeros(self.num_classes, memory_size, dim))
            self.register_buffer('memory_filled', torch.zeros(self.num_classes, dtype=torch.long))
            self.register_buffer('memory_pointer', torch.zeros(self.num_classes, dtype=torch.long))
        else:
            self.memory = None

    def _random_subcentroids(self, k_max: int, dim: int) -> Tensor:
        """(C, K, D) random unit vectors: the sub-centroids before training."""
        return F.normalize(torch.randn(self.num_classes, k_max, dim), dim=-1)

    def class_state(self) -> Dict[str, Tensor]:
        """What belongs to this model's classes: the sub-centroids, the memory
        and the class-score norm, by state_dict name relative to the head."""
        state = {'sub_centroids': self.sub_centroids}
        state.update({name: tensor for name, tensor in self.learning_state().items()
                      if tensor is not None})
        if self.memory is not None:
            state.update(memory=self.memory, memory_filled=self.memory_filled,
                         memory_pointer=self.memory_pointer)
        if self.score_norm is not None:
            state.update({'score_norm.weight': self.score_norm.weight,
                          'score_norm.bias': self.score_norm.bias})
        return state

    def learning_state(self) -> Dict[str, Tensor]:
        """The buffers of the learning mechanisms (None where one is off)."""
        return {name: getattr(self, name) for name in (
            'subcentroid_seeded', 'subcentroid_updates', 'subcentroid_wins',
            'restart_window_step', 'subcentroid_source')}

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
        if prefix + 'subcentroid_source' in state_dict:  # untrusted: rows, not a warning
            check_source_table(state_dict[prefix + 'subcentroid_source'],
                               self.sub_centroids.shape[:2], origin='the checkpoint',
                               entry=prefix + 'subcentroid_source')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        k = self.num_subcentroids
        k = k[0] if len(set(k)) == 1 else k
        return (f'{super().extra_repr()}, decoder={self.decoder_type}, '
                f'num_subcentroids={k}, momentum={self.momentum}')

    # ---------------------------------------------------------------- forward
    def embed(self, feat: Tensor) -> Tensor:
        """(B, channels, h, w) decoder features -> (B, D, h, w) unit embeddings."""
        if self.dropout is not None:
            feat = self.dropout(feat)
        if self.projection is not None:
            feat = self.projection(feat)
        return dnc_core.embed(feat, self.feature_norm.weight, self.feature_norm.bias,
                              self.feature_norm.eps)

    def logits_from_scores(self, sub_scores: Tensor) -> Tensor:
        """(B, C*K, h, w) sub-centroid scores -> (B, C, h, w) class logits,
        contiguous like a conv's output (mmseg's loss and resize are slow on
        channels-last maps)."""
        scores = dnc_core.class_scores(sub_scores, self.num_classes,
                                       self.subcentroid_active)
        if self.score_norm is None:
            return (scores / self.score_temperature).contiguous()
        scores = scores.permute(0, 2, 3, 1)  # (B, h, w, C): a free view
        # the norm's own (static) shape, not the tensor's: exporters with
        # dynamic H, W trace a tensor's shape as a runtime value
        scores = F.layer_norm(scores, self.score_norm.normalized_shape, self.score_norm.weight,
                              self.score_norm.bias, self.score_norm.eps)
        return scores.permute(0, 3, 1, 2).contiguous()

    def cls_seg(self, feat: Tensor) -> Tensor:
        """Nearest-sub-centroid classification: (B, channels, h, w) -> (B, C, h, w).

        The seam: the decoder's own ``forward`` ends in this call, whatever it
        does before. While :meth:`classified` listens, each call also records
        its embeddings and scores, so the training step learns from exactly
        what was classified, with no second forward pass.
        """
        if feat.shape[1] != self.channels:
            raise ValueError(
                f'{type(self).__name__}.cls_seg got features {tuple(feat.shape)}, '
                f'{feat.shape[1]} channels wide; DNC embeds `channels`={self.channels}. '
                f'The decoder {self.decoder_type} calls cls_seg on another width: it '
                "cannot carry DNC; keep it parametric, or use a head that README's table "
                "marks 'trains'.")
        sub_centroids = self.sub_centroids
        if self._classified is not None and torch.is_grad_enabled():
            # a copy: backward needs the scores' weights as they were before
            # the in-place update of the training step
            sub_centroids = sub_centroids.clone()
        embeddings = self.embed(feat)
        sub_scores = dnc_core.subcentroid_scores(embeddings, sub_centroids)
        logits = self.logits_from_scores(sub_scores)
        if self._classified is not None:
            self._classified.append(Classified(embeddings, sub_scores, logits))
        return logits

    @contextmanager
    def classified(self) -> Iterator[List['Classified']]:
        """Within the block, every ``cls_seg`` call appends its
        :class:`Classified` to the list this yields."""
        if self._classified is not None:
            raise RuntimeError(f'{type(self).__name__}.classified() does not nest.')
        self._classified = calls = []
        try:
            yield calls
        finally:
            self._classified = None

    def classify(self, inputs, *args) -> 'Classified':
        """The decoder's forward on ``inputs`` (and, for a cascade stage,
        ``prev_output``), returning what its ``cls_seg`` computed.

        Returns:
            Classified: embeddings (B, D, h, w), sub-centroid scores
            (B, C*K, h, w) and logits (B, C, h, w).
        """
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
        """Logits and, for each class, its nearest sub-centroid, per pixel.

        Args:
            inputs: multi-level features, as for ``forward`` (and
                ``prev_output`` for a cascade stage).

        Returns:
            tuple[Tensor, Tensor]: logits (B, C, h, w) and nearest (B, C, h, w)
            int64 in [0, K): ``nearest[:, c]`` is the sub-centroid of class c
            closest to each pixel (the one that decides the class score).
        """
        out = self.classify(inputs, *args)
        nearest = dnc_core.nearest_subcentroid(out.sub_scores, self.num_classes,
                                               self.subcentroid_active)
        return out.logits, nearest

    # --------------------------------------------------------------- training
    def loss(self, *args, **kwargs) -> dict:
        """The decoder's own ``loss`` (its forward and its ``loss_by_feat``:
        every classifier it trains keeps its loss), plus ``loss_ppc`` and
        ``loss_ppd`` on what ``cls_seg`` classified; moves the sub-centroids one
        momentum step.

        Takes the decoder's arguments: ``(inputs, batch_data_samples,
        train_cfg)``, or ``(inputs, prev_output, batch_data_samples,
        train_cfg)`` for a cascade stage such as OCRHead.
        """
        decoder_loss = super().loss
        samples = inspect.signature(decoder_loss).bind(*args, **kwargs).arguments.get(
            'batch_data_samples')
        if samples is None:
            raise TypeError(f'{type(self).__name__}.loss: no batch_data_samples among '
                            'its arguments.')
        # BaseDecodeHead's: PIDHead's own also stacks the edge maps
        seg_label = BaseDecodeHead._stack_batch_gt(self, samples)
        self.check_labels(seg_label, samples)
        with self.classified() as calls:
            losses = decoder_loss(*args, **kwargs)
        out = self._one_call(calls, 'training step')
        losses.update(self.learn_subcentroids(out.embeddings, out.sub_scores, out.logits,
                                              seg_label))
        return losses

    def check_labels(self, seg_label: Tensor, batch_data_samples) -> None:
        """Every label is a class or ``ignore_index``, before any loss sees it
        (mmseg's cross-entropy would fail with 'Target 20 is out of bounds').

        Args:
            seg_label (Tensor): (B, 1, H, W) ground truth.

        Raises:
            ValueError: naming each label file with values outside the classes.
        """
        c = self.num_classes
        bad = (seg_label != self.ignore_index) & ((seg_label < 0) | (seg_label >= c))
        if not bad.any():
            return
        lines = []
        for i in bad.flatten(1).any(dim=1).nonzero().flatten().tolist():
            values = sorted(seg_label[i][bad[i]].unique().tolist())
            path = batch_data_samples[i].metainfo.get('seg_map_path', f'batch image {i}')
            lines.append(f'  {path}: values {values[:10]}')
        raise ValueError(
            f'Labels outside the {c} classes (0..{c - 1}, or ignore_index='
            f'{self.ignore_index}):\n' + '\n'.join(lines) + '\nCheck num_classes against '
            'the dataset, reduce_zero_label (ADE20K), and that the label files hold '
            'class indices (not colours).')

    def learn_subcentroids(self, embeddings: Tensor, sub_scores: Tensor,
                           seg_logits: Tensor, seg_label: Tensor) -> Dict[str, Tensor]:
        """Assign labelled pixels to sub-centroids, update them, and return
        the PPC and PPD losses.

        Args:
            embeddings (Tensor): (B, D, h, w) unit embeddings.
            sub_scores (Tensor): (B, C*K, h, w) their sub-centroid scores.
            seg_logits (Tensor): (B, C, h, w) class logits.
            seg_label (Tensor): (B, 1, H, W) ground truth at input size.
        """
        b, d, h, w = embeddings.shape
        c, k = self.num_classes, self.sub_centroids.shape[1]
        labels = F.interpolate(seg_label.float(), size=(h, w), mode='nearest')
        labels = labels.long().view(-1)  # (N,), pixel order b, h, w
        labelled = labels != self.ignore_index
        y = labels[labelled]
        scores = sub_scores.permute(0, 2, 3, 1).reshape(-1, c * k)[labelled]  # (M, C*K)
        if y.numel() and (y.min() < 0 or y.max() >= c):
            raise ValueError(
                f'DNCDecodeHead: labels must be in [0, {c}) or ignore_index='
                f'{self.ignore_index}, got values in [{int(y.min())}, {int(y.max())}]. '
                'Check num_classes and the dataset (reduce_zero_label for ADE20K).')
        if self.subcentroid_active is not None:
            scores = scores.masked_fill(~self.subcentroid_active.view(1, -1), float('-inf'))

        with torch.no_grad():
            x = embeddings.detach().permute(0, 2, 3, 1).reshape(-1, d)[labelled]
            own = scores.detach().view(-1, c, k)[torch.arange(y.numel()), y]  # (M, K)
            correct = seg_logits.detach().argmax(dim=1).view(-1)[labelled] == y  # (M,)
            assignment = self.assign_and_update(x, y, own, correct)
            self.last_assignment = assignment

        if y.numel() == 0:  # nothing labelled: zero losses that keep the graph
            zero = sub_scores.sum() * 0.0
            return dict(loss_ppc=zero, loss_ppd=zero)
        target = y * k + assignment
        return dict(
            loss_ppc=self.loss_ppc_weight * dnc_core.ppc_loss(scores, target, self.ppc_temperature),
            loss_ppd=self.loss_ppd_weight * dnc_core.ppd_loss(scores, target))

    def assign_and_update(self, x: Tensor, y: Tensor, own: Tensor, correct: Tensor) -> Tensor:
        """One learning step of the sub-centroids: seed unseen classes,
        Sinkhorn over the batch (and memory), momentum step, restart dead
        sub-centroids, enqueue. In-place on the buffers, under no_grad.

        Args:
            x (Tensor): (M, D) unit embeddings of the labelled pixels.
            y (Tensor): (M,) their classes.
            own (Tensor): (M, K) their scores against their own class's
                sub-centroids.
            correct (Tensor): (M,) bool, the pixels the current prediction
                gets right.

        Returns:
            Tensor: (M,) assignment of the batch pixels.
        """
        m = y.numel()
        # decided across ranks: a rank that skipped would leave the others
        # waiting in the update's all-reduce
        non_finite = dnc_core.all_reduce_((~torch.isfinite(x)).any().float())
        if non_finite.item() > 0:
            print_log('DNCDecodeHead: non-finite decoder features in this batch; '
                      'sub-centroids not updated this step.', logger='current',
                      level=logging.WARNING)
            return self._masked_for(own, y).argmax(dim=1)
        if self.subcentroids_fixed:  # real pixels (SnapSubcentroidsHook): targets only
            return dnc_core.sinkhorn_assign(
                own, y, self.num_classes, self.sinkhorn_epsilon, self.sinkhorn_iterations,
                self.subcentroid_active)[1]
        if self.subcentroid_seeded is not None:
            # in the step that seeds a class, its PPC/PPD targets come from the
            # seeds while the loss scores still use the random start: one step
            # per class, once
            own = self._seed_unseen_classes(x, y, own)
        if self.memory is not None:
            stored, stored_y, filled = stored_entries(self.memory, self.memory_filled)
            stored_own = torch.bmm(self.memory, self.sub_centroids.transpose(1, 2))[filled]
            x_all, y_all = torch.cat([x, stored.to(x.dtype)]), torch.cat([y, stored_y])
            own_all = torch.cat([own.float(), stored_own.float()])
        else:
            x_all, y_all, own_all = x, y, own
        _, assignment_all = dnc_core.sinkhorn_assign(
            own_all, y_all, self.num_classes, self.sinkhorn_epsilon,
            self.sinkhorn_iterations, self.subcentroid_active)
        assignment = assignment_all[:m]

        learn = torch.ones_like(y_all, dtype=torch.bool)
        learn[:m] = learning.learning_mask(y, correct, self.num_classes, self.update_from)
        momentum = self.momentum
        if self.subcentroid_updates is not None:
            momentum = learning.warmup_momentum(self.momentum, self.subcentroid_updates)
        if self.subcentroid_seeded is not None:  # unseeded classes stay as they are
            learn &= self.subcentroid_seeded[y_all]
        new, counts = dnc_core.momentum_update(
            self.sub_centroids, x_all[learn], y_all[learn], assignment_all[learn],
            momentum)
        self.sub_centroids.copy_(new)
        if self.subcentroid_updates is not None:
            self.subcentroid_updates += (counts > 0).float()
        if self.subcentroid_wins is not None:
            self._restart_dead(x, y, own)
        if self.memory is not None:
            keep = learn[:m]
            enqueue_(self.memory, self.memory_filled, self.memory_pointer,
                     x[keep], y[keep], self.memory_per_step)
        return assignment

    def _seed_unseen_classes(self, x: Tensor, y: Tensor, own: Tensor) -> Tensor:
        """k-means++ seeds for every class seen for the first time with at
        least K pixels (on some rank; the lowest such rank's seeds win).

        Returns:
            Tensor: (M, K) own-class scores, recomputed for the seeded classes.
        """
        c, k_max, d = self.sub_centroids.shape
        counts = torch.bincount(y, minlength=c)
        ks = torch.tensor(self.num_subcentroids, device=counts.device)
        ready = (~self.subcentroid_seeded) & (counts >= ks)
        seeds = torch.zeros_like(self.sub_centroids)
        for cls in ready.nonzero().flatten().tolist():
            k = self.num_subcentroids[cls]
            class_seeds = learning.kmeans_pp_seeds(x[y == cls], k)  # float32 rows of x
            if x.dtype != torch.float32:
                # under bfloat16/float16 autocast a pixel's embedding is unit
                # only to about 1e-2 (float32 rows are left bit for bit)
                class_seeds = F.normalize(class_seeds, dim=-1)
            seeds[cls, :k] = class_seeds
        # every rank's ready classes are unseeded (the flags agree across ranks)
        seeds, seeded_now = learning.gather_per_class(seeds, ready)
        if not seeded_now.any():
            return own
        if self.subcentroid_active is not None:  # unused slots of per-class K stay
            seeds = torch.where(self.subcentroid_active[..., None], seeds, self.sub_centroids)
        self.sub_centroids[seeded_now] = seeds[seeded_now].to(self.sub_centroids.dtype)
        self.subcentroid_seeded |= seeded_now
        if self.subcentroid_updates is not None:
            self.subcentroid_updates[seeded_now] = 0
        rows = seeded_now[y]
        own = own.clone()
        own[rows] = torch.einsum('md,mkd->mk', x[rows].float(),
                                 self.sub_centroids[y[rows]].float()).to(own.dtype)
        return own

    def _restart_dead(self, x: Tensor, y: Tensor, own: Tensor) -> None:
        """Count each sub-centroid's wins; at the end of a window, restart
        those below ``restart_dead_below`` of the fair share on the class's
        pixels of this step: its worst-fitted ones, or (``restart_on='random'``)
        those with the lowest uniform random keys, all ranks together."""
        c, k, _ = self.sub_centroids.shape
        best, nearest = self._masked_for(own, y).max(dim=1)
        wins = torch.bincount(y * k + nearest, minlength=c * k).float().view(c, k)
        self.subcentroid_wins += dnc_core.all_reduce_(wins)
        self.restart_window_step += 1
        if int(self.restart_window_step) % self.restart_dead_every:
            return
        dead = learning.dead_subcentroids(self.subcentroid_wins, self.restart_dead_below,
                                          self.subcentroid_active)
        if self.subcentroid_seeded is not None:
            dead &= self.subcentroid_seeded[:, None]
        self.subcentroid_wins.zero_()
        if not dead.any():
            return
        # the pixels of lowest key: the worst-fitted, or a uniform sample
        keys = best if self.restart_on == 'worst' else torch.rand(best.shape, device=best.device)
        worst, exists = learning.worst_fitted(x, y, keys, c, k)
        # the i-th dead sub-centroid of a class takes the class's i-th pixel
        rank = dead.long().cumsum(dim=1) - 1
        pick = worst.gather(1, rank.clamp(min=0)[..., None].expand(-1, -1, worst.shape[2]))
        restart = dead & exists.gather(1, rank.clamp(min=0))
        self.sub_centroids[restart] = F.normalize(pick[restart], dim=-1).to(
            self.sub_centroids.dtype)
        if self.subcentroid_updates is not None:
            self.subcentroid_updates[restart] = 0
        print_log(f'DNCDecodeHead: restarted {int(restart.sum())} dead sub-centroids '
                  f'(classes {sorted(set(restart.nonzero()[:, 0].tolist()))}) on '
                  f"{'their worst-fitted' if self.restart_on == 'worst' else 'random'} pixels.",
                  logger='current', level=logging.INFO)

    @property
    def used_slots(self) -> Tensor:
        """(C, K) bool: the sub-centroid slots each class uses (all of them
        unless K is per class; ``subcentroid_active`` is None then)."""
        if self.subcentroid_active is not None:
            return self.subcentroid_active
        return torch.ones(self.sub_centroids.shape[:2], dtype=torch.bool,
                          device=self.sub_centroids.device)

    def _masked_for(self, own: Tensor, y: Tensor) -> Tensor:
        """(M, K) own-class scores of pixels of classes ``y``, unused slots at -inf."""
        if self.subcentroid_active is None:
            return own.float()
        return own.float().masked_fill(~self.subcentroid_active[y], -math.inf)
