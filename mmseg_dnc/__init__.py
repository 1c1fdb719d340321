"""mmseg_dnc: Deep Nearest Centroids for mmsegmentation 1.x.

Importing this package registers ``DNCDecodeHead`` in mmseg's MODELS, makes
checkpoint loading safe under torch's weights-only unpickler, and makes
checkpoint saving safe from interruption (``engine.SafeCheckpointHook``), and
makes ``mmseg_dnc::`` config paths resolve (``package_configs``). ``compat`` goes
first: on mmcv-lite it must run before anything imports ``mmseg.models``.
"""
from . import compat  # noqa: F401  (must precede mmseg.models)
from . import checkpoint  # noqa: F401
from . import engine  # noqa: F401  (CheckpointHook: atomic saves, RNG state)
from . import evaluation  # noqa: F401  (IoUMetric: label values outside the classes)
from . import package_configs  # noqa: F401  (_base_ = 'mmseg_dnc::dnc/...')
from .datasets import CamVidDataset
from .models import DNCDecodeHead

__version__ = '0.1.0'
__all__ = ['CamVidDataset', 'DNCDecodeHead', '__version__']
