"""``register_all_modules``, as mmseg has it in ``mmseg.utils``: mmengine's
``get_model('mmseg_dnc::dnc/x.py')`` calls ``mmseg_dnc.utils.register_all_modules``
before it builds the model (see ``mmseg_dnc.package_configs``)."""
import datetime

from mmengine.registry import DefaultScope

# 'mmseg': this package registers into mmseg's registries; it has none of its own
from ..package_configs import REGISTRY_SCOPE


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register mmseg's modules and this package's, which go into mmseg's registries.

    Args:
        init_default_scope: make ``mmseg`` the default registry scope, as
            ``mmseg.utils.register_all_modules`` does, but without its warning
            when the current scope is another (``get_model`` has just set it
            to ``mmseg_dnc``, the prefix's package).
    """
    import mmseg_dnc  # noqa: F401  (DNCDecodeHead, CamVidDataset, the hooks, ...)
    from mmseg.utils import register_all_modules as register_mmseg_modules
    register_mmseg_modules(init_default_scope=False)
    current = DefaultScope.get_current_instance()
    if init_default_scope and (current is None or current.scope_name != REGISTRY_SCOPE):
        DefaultScope.get_instance(f'mmseg_dnc-{datetime.datetime.now()}', scope_name=REGISTRY_SCOPE)
