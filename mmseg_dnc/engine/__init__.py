from .amp import CPUAmpOptimWrapper
from .checkpoint_fit import CheckpointFitsHook, check_checkpoint_fits
from .checkpoint_hook import SafeCheckpointHook
from .cli import add_common_args, finish_distributed, load_config
from .config_checks import check_num_classes
from .run_config import prepare_config
from .snap_hook import SnapSubcentroidsHook
from .resume_checks import UnsafeResumeError, check_resume_checkpoint
from .resume_guard import is_resuming  # noqa: F401  (checks every resumed checkpoint)

__all__ = ['CPUAmpOptimWrapper', 'CheckpointFitsHook', 'SafeCheckpointHook',
           'SnapSubcentroidsHook',
           'UnsafeResumeError', 'add_common_args', 'check_checkpoint_fits',
           'check_num_classes', 'check_resume_checkpoint', 'finish_distributed',
           'is_resuming', 'load_config', 'prepare_config']
