"""What prepares and runs a run: the config, its checks, the tools' shared
arguments and CPU autocast. Checkpoint safety is :mod:`mmseg_dnc.checkpointing`
(its hooks and checks keep their names here too); the snap hook lives with
the case base it builds on, :mod:`mmseg_dnc.explain.snap_hook`."""
from mmseg_dnc.checkpointing import (CheckpointFitsHook, SafeCheckpointHook, UnsafeResumeError,
                                     check_checkpoint_fits, check_resume_checkpoint, is_resuming)
from .amp import CPUAmpOptimWrapper
from .cli import add_common_args, finish_distributed, load_config
from .config_checks import check_num_classes
from .run_config import prepare_config
from .validation_curve import ValidationCurve

__all__ = ['CPUAmpOptimWrapper', 'CheckpointFitsHook', 'SafeCheckpointHook',
           'UnsafeResumeError', 'add_common_args', 'check_checkpoint_fits',
           'check_num_classes', 'check_resume_checkpoint', 'finish_distributed',
           'is_resuming', 'load_config', 'prepare_config', 'ValidationCurve']
