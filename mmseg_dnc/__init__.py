"""mmseg_dnc: Deep Nearest Centroids for mmsegmentation 1.x.

Importing this package registers ``DNCDecodeHead`` in mmseg's MODELS, makes
checkpoints safe to load, save and resume (``checkpointing``: weights-only
loading, atomic saves, exact and checked resumes), and makes ``mmseg_dnc::``
config paths resolve (``package_configs``). ``compat`` goes first: on mmcv-lite
it must run before anything imports ``mmseg.models`` (``checkpointing`` does).
"""
from . import compat  # noqa: F401  (must precede mmseg.models)
from . import checkpointing  # noqa: F401  (loader, CheckpointHook, Runner.resume checks)
from . import engine  # noqa: F401  (CPUAmpOptimWrapper)
from . import explain  # noqa: F401  (SnapSubcentroidsHook)
from . import evaluation  # noqa: F401  (IoUMetric: label values outside the classes)
from . import package_configs  # noqa: F401  (_base_ = 'mmseg_dnc::dnc/...')
from .datasets import CamVidDataset
from .models import DNCDecodeHead

__version__ = '0.1.0'
__all__ = ['CamVidDataset', 'DNCDecodeHead', '__version__']
