"""A class-weighted cross-entropy that works with ignored pixels.

mmseg 1.2.2's ``CrossEntropyLoss(class_weight=...)`` fails on the first label
map that holds the ignore index: its mean indexes the class weights with whole
rows of the label map (``class_weight[cls] for cls in label``), so 255 raises
``IndexError: index 255 is out of bounds``. This loss is PyTorch's own
weighted mean over the labelled pixels, ``sum_i w[y_i] ce_i / sum_i w[y_i]``.

Shape legend: B batch, C classes, H, W label size.
"""
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS


@MODELS.register_module()
class ClassWeightedCrossEntropyLoss(nn.Module):
    """Softmax cross-entropy, class c's pixels weighing ``class_weight[c]``.

    Args:
        class_weight (Sequence[float]): one positive weight per class, e.g.
            median-frequency weights (``tools/k_per_class.py`` prints them).
        loss_weight (float): the weight of the whole loss.
        loss_name (str): its name in the log (``loss_`` keeps it in backward).
    """

    def __init__(self, class_weight: Sequence[float], loss_weight: float = 1.0,
                 loss_name: str = 'loss_ce'):
        super().__init__()
        weights = list(class_weight) if isinstance(class_weight, (list, tuple)) else None
        if not weights or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                  and math.isfinite(w) and w > 0 for w in weights):
            raise ValueError(f'ClassWeightedCrossEntropyLoss(class_weight={class_weight!r}): '
                             'give one positive number per class.')
        self.register_buffer('class_weight', torch.tensor(weights, dtype=torch.float32),
                             persistent=False)
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(self, cls_score: Tensor, label: Tensor, weight=None, ignore_index: int = 255,
                **kwargs) -> Tensor:
        """(B, C, H, W) logits, (B, H, W) labels -> the weighted mean (a scalar)."""
        if weight is not None:
            raise ValueError('ClassWeightedCrossEntropyLoss takes no per-pixel weight '
                             '(a sampler); use mmseg\'s CrossEntropyLoss for that.')
        if cls_score.shape[1] != self.class_weight.numel():
            raise ValueError(f'ClassWeightedCrossEntropyLoss: {self.class_weight.numel()} class '
                             f'weights for {cls_score.shape[1]} classes; give one per class.')
        if not bool((label != ignore_index).any()):
            return cls_score.sum() * 0.0  # nothing labelled: zero, and the graph kept
        loss = F.cross_entropy(cls_score.float(), label, weight=self.class_weight,
                               ignore_index=ignore_index, reduction='mean')
        return self.loss_weight * loss
