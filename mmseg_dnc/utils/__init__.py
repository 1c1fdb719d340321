from .cpu import adapt_to_cpu, open_gloo_group, replace_sync_bn
from .set_env import register_all_modules

__all__ = ['adapt_to_cpu', 'open_gloo_group', 'register_all_modules', 'replace_sync_bn']
