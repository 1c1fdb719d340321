from .cpu import adapt_to_cpu, open_gloo_group, replace_sync_bn

__all__ = ['adapt_to_cpu', 'open_gloo_group', 'replace_sync_bn']
