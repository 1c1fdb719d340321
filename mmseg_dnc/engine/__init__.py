from .amp import CPUAmpOptimWrapper
from .checkpoint_hook import SafeCheckpointHook
from .cli import add_common_args, load_config
from .config_checks import check_checkpoint_fits, check_num_classes

__all__ = ['CPUAmpOptimWrapper', 'SafeCheckpointHook', 'add_common_args',
           'check_checkpoint_fits', 'check_num_classes', 'load_config']
