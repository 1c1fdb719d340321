from .cpu import adapt_to_cpu, replace_sync_bn

__all__ = ['adapt_to_cpu', 'replace_sync_bn']
