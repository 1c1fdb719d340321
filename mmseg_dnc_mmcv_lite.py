"""Make ``import mmseg`` work on mmcv-lite, from interpreter start, without ``import mmseg_dnc``.

mmseg 1.2.2 imports ``mmcv.ops`` at module level in four files, so on
mmcv-lite, which ships ``mmcv/ops`` without its compiled ``mmcv._ext``,
``from mmseg.apis import init_model`` fails with ``No module named
'mmcv._ext'`` before any config (and its ``custom_imports``) is read. None of
those ops is used by FCN, DeepLabV3, PSPNet or UPerNet.

Installing ``mmseg_dnc`` puts ``mmseg_dnc_mmcv_lite.pth`` into site-packages;
its one line imports this module at interpreter start, which adds an import
finder and nothing else (no mmcv, no torch). The finder answers for the name
``mmcv.ops`` only, and only when mmcv has no compiled ``_ext``: then
``mmcv.ops`` is a stand-in whose every op raises an error naming it and how to
install full mmcv, when it is used. With full mmcv it steps aside, and the
real ``mmcv.ops`` loads as always. ``mmseg_dnc.compat`` installs the same
finder when the package is imported, for installs without the ``.pth``.
"""
import sys
from importlib.machinery import ModuleSpec, PathFinder

LITE_MESSAGE = (
    'mmcv.ops.{name} needs the compiled ops of full mmcv, but this environment '
    'has mmcv-lite, which has none. The DNC heads on FCN, DeepLabV3 and '
    'UPerNet do not need it; for {name}, install full mmcv 2.1.0 '
    '(`pip install -U openmim && mim install "mmcv==2.1.0"`).')


class MissingOp:
    """Stands in for one compiled op; using it raises a RuntimeError."""

    def __init__(self, name: str):
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(LITE_MESSAGE.format(name=self.__name__))

    def __repr__(self) -> str:
        return f'<mmcv-lite stand-in for mmcv.ops.{self.__name__}>'


def _missing_op(name: str):
    if name.startswith('__'):
        raise AttributeError(name)
    return MissingOp(name)


class StandInLoader:
    """Makes ``mmcv.ops`` a module whose every attribute is a :class:`MissingOp`."""

    @staticmethod
    def create_module(spec):
        return None  # the default module

    @staticmethod
    def exec_module(module):
        module.__doc__ = 'Stand-in for mmcv.ops under mmcv-lite (see mmseg_dnc_mmcv_lite).'
        module.__getattr__ = _missing_op
        module.IS_MMCV_LITE_STAND_IN = True


class MmcvOpsFinder:
    """A meta path finder for ``mmcv.ops`` when mmcv has no compiled ``_ext``."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        if fullname != 'mmcv.ops':
            return None
        if PathFinder.find_spec('mmcv._ext', path) is not None:
            return None  # full mmcv: its own mmcv.ops, unchanged
        return ModuleSpec('mmcv.ops', StandInLoader())

    @staticmethod
    def invalidate_caches():
        pass


def install() -> None:
    """Put :class:`MmcvOpsFinder` first on ``sys.meta_path`` (once)."""
    if not any(finder is MmcvOpsFinder for finder in sys.meta_path):
        sys.meta_path.insert(0, MmcvOpsFinder)


def is_stand_in(module) -> bool:
    return getattr(module, 'IS_MMCV_LITE_STAND_IN', False)
