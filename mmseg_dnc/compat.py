"""Make mmsegmentation importable on mmcv-lite.

mmseg 1.2.2 imports ``mmcv.ops`` at module level in four files (``san_head``,
``focal_loss``, ``models/utils/point_sample`` and ``utils/mask_classification``),
so with mmcv-lite, which ships ``mmcv/ops`` without its compiled ``mmcv._ext``,
``import mmseg.models`` fails before any model is built. None of those ops is
used by FCN, DeepLabV3 or UPerNet.

When ``mmcv.ops`` imports (full mmcv, as on GPU machines) this module does
nothing. Otherwise it installs a stand-in ``mmcv.ops`` whose every op raises a
clear error when it is used, so only models that really need a compiled op fail,
and they say how to fix it.
"""
import importlib
import sys
import types
import warnings

_LITE_MESSAGE = (
    'mmcv.ops.{name} needs the compiled ops of full mmcv, but this environment '
    'has mmcv-lite, which has none. The DNC heads on FCN, DeepLabV3 and '
    'UPerNet do not need it; for {name}, install full mmcv 2.1.0 '
    '(`pip install -U openmim && mim install "mmcv==2.1.0"`).')


class MissingOp:
    """Stands in for one compiled op; using it raises a RuntimeError."""

    def __init__(self, name: str):
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(_LITE_MESSAGE.format(name=self.__name__))

    def __repr__(self) -> str:
        return f'<mmcv-lite stand-in for mmcv.ops.{self.__name__}>'


def _stand_in_module() -> types.ModuleType:
    module = types.ModuleType(
        'mmcv.ops', 'Stand-in for mmcv.ops under mmcv-lite (see mmseg_dnc.compat).')

    def __getattr__(name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        return MissingOp(name)

    module.__getattr__ = __getattr__
    module.IS_MMCV_LITE_STAND_IN = True
    return module


def ensure_mmcv_ops() -> bool:
    """Install the stand-in if ``mmcv.ops`` cannot load its compiled ops.

    Returns:
        bool: True when full mmcv's ops are available, False under mmcv-lite.
    """
    try:
        importlib.import_module('mmcv.ops')
        return not getattr(sys.modules['mmcv.ops'], 'IS_MMCV_LITE_STAND_IN', False)
    except ImportError as error:
        if 'mmcv._ext' not in str(error):
            raise  # a broken full mmcv: hiding that would be a silent fallback
    # Drop the half-imported submodules of the real package before replacing it.
    for name in [n for n in sys.modules if n == 'mmcv.ops' or n.startswith('mmcv.ops.')]:
        del sys.modules[name]
    import mmcv
    sys.modules['mmcv.ops'] = mmcv.ops = _stand_in_module()
    # mmcv.cnn warns on import that it lacks MultiScaleDeformableAttention under
    # mmcv-lite; the stand-in already says so, with the fix, if it is ever used.
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention')
        importlib.import_module('mmcv.cnn.bricks.transformer')
    return False


HAS_FULL_MMCV = ensure_mmcv_ops()
