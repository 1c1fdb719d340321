"""The configs that come with the package, and the ``mmseg_dnc::`` prefix that
reaches them the way ``mmseg::`` reaches mmseg's:

    _base_ = 'mmseg_dnc::dnc/fcn_cgnet_camvid.py'      # in a config
    python -m mmseg_dnc.tools.train mmseg_dnc::dnc/fcn_cgnet_camvid.py

Where they are (``config_root``): an installed wheel carries them in
``mmseg_dnc/.mim/configs`` (setup.py copies the repository's ``configs/``
there at build time, as mmseg ships its own); a source checkout (editable
install, or ``PYTHONPATH``) has them in ``configs/`` beside the package.

Importing ``mmseg_dnc`` wraps mmengine's ``Config._get_cfg_path`` (how a
``_base_`` path becomes a file) so that ``mmseg_dnc::`` is resolved here and
every other path as before. mmengine's own route for ``pkg::`` (its
``MODULE2PACKAGE`` table) is not used, for two reasons: it finds the package
through its installed distribution, which an editable install does not place
beside its code; and it gives the base's dicts the scope ``mmseg_dnc``, which
has no registry, so mmengine would build them from its root registries, which
hold none of their types (``CamVidDataset is not in the mmengine::dataset
registry``). Every type in these configs is in mmseg's registries (this
package registers into them), so their scope is ``mmseg``, as for an
``mmseg::`` base. The prefix works in a process that has imported
``mmseg_dnc`` before it reads the config (this package's tools do).
"""
import os
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config

PREFIX = 'mmseg_dnc::'
# the registry scope of every type these configs name (see the module docstring)
REGISTRY_SCOPE = 'mmseg'
_PACKAGE_DIR = osp.dirname(osp.abspath(__file__))


def config_root() -> str:
    """The folder that ``mmseg_dnc::`` paths are relative to.

    Raises:
        FileNotFoundError: neither an installed wheel's ``.mim/configs`` nor a
            source checkout's ``configs/`` is there.
    """
    shipped = osp.join(_PACKAGE_DIR, '.mim', 'configs')
    if osp.isdir(shipped):
        return shipped
    checkout = osp.dirname(_PACKAGE_DIR)
    if osp.isfile(osp.join(checkout, 'setup.py')) and osp.isdir(
            osp.join(checkout, 'configs', 'dnc')):
        return osp.join(checkout, 'configs')
    raise FileNotFoundError(
        f'mmseg_dnc at {_PACKAGE_DIR} has no configs: neither {shipped} (an installed '
        f'wheel) nor a source checkout\'s configs/ beside it. Reinstall it from a wheel '
        f'built by its setup.py (pip install mmseg_dnc-*.whl, or pip install PATH/TO/CHECKOUT), '
        f'or give the config as a file path.')


def resolve_config(path: str) -> str:
    """A config given as a file path or as ``PKG::RELATIVE/PATH.py``, as a file path.

    ``mmseg_dnc::`` is resolved by ``config_path``; another ``PKG::`` (e.g.
    ``mmseg::``) as mmengine resolves it in a ``_base_``; a plain path is
    returned as it is.
    """
    if path.startswith(PREFIX):
        return config_path(path)
    if '::' in path:
        return Config._get_cfg_path(path, path)[0]
    return path


def config_path(path: str) -> str:
    """``mmseg_dnc::dnc/x.py`` as the file it names.

    Raises:
        ValueError: ``path`` does not start with ``mmseg_dnc::`` or leaves the configs.
        FileNotFoundError: no such config; the message lists the ones there are.
    """
    if not path.startswith(PREFIX):
        raise ValueError(f'{path!r} is not a {PREFIX} config path (e.g. '
                         f'{PREFIX}dnc/fcn_cgnet_camvid.py).')
    root = config_root()
    relative = path[len(PREFIX):]
    file = osp.normpath(osp.join(root, relative))
    if osp.isabs(relative) or not file.startswith(root + osp.sep):
        raise ValueError(f'{path!r}: give a path inside the configs ({root}), relative to '
                         f'it, e.g. {PREFIX}dnc/fcn_cgnet_camvid.py.')
    if not osp.isfile(file):
        raise FileNotFoundError(
            f'{path!r}: no such config in {root}. There are: '
            + ', '.join(PREFIX + name for name in available_configs(root)) + '.')
    return file


def available_configs(root: Optional[str] = None) -> list:
    """Every config under ``root`` (default: ``config_root()``), relative to it."""
    root = root or config_root()
    return sorted(
        osp.relpath(osp.join(folder, name), root)
        for folder, _, names in os.walk(root)
        for name in names if name.endswith('.py'))


def _get_cfg_path(cfg_path: str, filename: str) -> Tuple[str, Optional[str]]:
    """mmengine's ``Config._get_cfg_path`` (a ``_base_`` path as a file and the
    registry scope of its dicts), with ``mmseg_dnc::`` resolved here."""
    if cfg_path.startswith(PREFIX):
        return config_path(cfg_path), REGISTRY_SCOPE
    return _get_cfg_path.mmengine_version(cfg_path, filename)


def install() -> None:
    """Make mmengine resolve ``mmseg_dnc::`` in ``_base_`` (once per process)."""
    if getattr(Config._get_cfg_path, 'mmengine_version', None) is not None:
        return
    _get_cfg_path.mmengine_version = Config._get_cfg_path
    Config._get_cfg_path = staticmethod(_get_cfg_path)


install()
