"""The learnable projection a DNC head may put before its embedding.

ProtoSeg (DNC's segmentation predecessor) always projects the decoder's
features before the embedding: 1x1 conv (D -> D), ReLU, 1x1 conv, with no
norm layer (lib/models/modules/contrast.py ``ProjectionHead``; DNC.md). The
head's ``projection`` names which:

- ``False`` (default, DNC's): none; the C x D classifier is gone and nothing
  replaces it;
- ``'conv_relu_conv'``: ProtoSeg's, no norm;
- ``'conv_norm_relu_conv'`` (``True``, this project's earlier option): the
  same with the head's ``norm_cfg`` after the first conv.
"""
from typing import Optional, Union

import torch.nn as nn
from mmcv.cnn import ConvModule

KINDS = (False, True, 'conv_relu_conv', 'conv_norm_relu_conv')


def build_projection(kind: Union[bool, str], dim: int, conv_cfg=None, norm_cfg=None,
                     act_cfg=None) -> Optional[nn.Module]:
    """The projection ``kind`` on a D-wide map: (B, D, h, w) -> (B, D, h, w),
    or None for none."""
    if kind is False:
        return None
    norm = norm_cfg if kind in (True, 'conv_norm_relu_conv') else None
    return nn.Sequential(
        ConvModule(dim, dim, 1, conv_cfg=conv_cfg, norm_cfg=norm, act_cfg=act_cfg),
        nn.Conv2d(dim, dim, 1))
