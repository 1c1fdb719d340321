"""Make mmsegmentation importable on mmcv-lite.

mmseg 1.2.2 imports ``mmcv.ops`` at module level in four files (``san_head``,
``focal_loss``, ``models/utils/point_sample`` and ``utils/mask_classification``),
so with mmcv-lite, which ships ``mmcv/ops`` without its compiled ``mmcv._ext``,
``import mmseg.models`` fails before any model is built. None of those ops is
used by FCN, DeepLabV3 or UPerNet.

The top-level module :mod:`mmseg_dnc_mmcv_lite` (imported at interpreter start
by the ``.pth`` file this package installs, so that plain ``import mmseg``
works too) makes ``mmcv.ops`` a stand-in whose every op raises a clear error
when it is used, only when mmcv has no compiled ops. This module installs that
finder again, for an environment without the ``.pth`` (e.g. the source tree on
``PYTHONPATH``), before anything imports ``mmseg.models``. With full mmcv it
does nothing.
"""
import importlib
import sys
import warnings

from mmseg_dnc_mmcv_lite import MissingOp, install, is_stand_in

__all__ = ['HAS_FULL_MMCV', 'MissingOp', 'ensure_mmcv_ops']


def ensure_mmcv_ops() -> bool:
    """Make ``import mmcv.ops`` work: the real one, or the mmcv-lite stand-in.

    Returns:
        bool: True when full mmcv's ops are available, False under mmcv-lite.
    """
    install()
    if 'mmcv.ops' not in sys.modules:
        # a failed earlier import (before the finder) leaves its submodules behind
        for name in [n for n in sys.modules if n.startswith('mmcv.ops.')]:
            del sys.modules[name]
    ops = importlib.import_module('mmcv.ops')  # a broken full mmcv raises here, as it should
    if not is_stand_in(ops):
        return True
    # mmcv.cnn warns on import that it lacks MultiScaleDeformableAttention under
    # mmcv-lite; the stand-in already says so, with the fix, if it is ever used.
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention')
        importlib.import_module('mmcv.cnn.bricks.transformer')
    return False


HAS_FULL_MMCV = ensure_mmcv_ops()
