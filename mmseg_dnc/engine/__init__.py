from .amp import CPUAmpOptimWrapper
from .checkpoint_hook import SafeCheckpointHook
from .cli import add_common_args, finish_distributed, load_config
from .config_checks import check_checkpoint_fits, check_num_classes

__all__ = ['CPUAmpOptimWrapper', 'SafeCheckpointHook', 'add_common_args',
           'check_checkpoint_fits', 'check_num_classes', 'finish_distributed', 'load_config']
