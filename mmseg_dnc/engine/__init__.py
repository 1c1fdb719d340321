from .checkpoint_hook import SafeCheckpointHook
from .cli import add_common_args, load_config

__all__ = ['SafeCheckpointHook', 'add_common_args', 'load_config']
