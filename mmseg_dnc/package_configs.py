"""The configs that come with the package, and the ``mmseg_dnc::`` prefix that
reaches them the way ``mmseg::`` reaches mmseg's:

    _base_ = 'mmseg_dnc::dnc/fcn_cgnet_camvid.py'      # in a config
    python -m mmseg_dnc.tools.train mmseg_dnc::dnc/fcn_cgnet_camvid.py
    mmengine.hub.get_config('mmseg_dnc::dnc/fcn_cgnet_camvid.py')   # and get_model

Where they are (``config_root``): an installed wheel carries them in
``mmseg_dnc/.mim/configs`` (setup.py copies the repository's ``configs/``
there at build time, as mmseg ships its own); a source checkout (editable
install, or ``PYTHONPATH``) has them in ``configs/`` beside the package.

Importing ``mmseg_dnc`` wraps mmengine's ``Config._get_cfg_path`` (how a
``_base_`` path becomes a file) so that ``mmseg_dnc::`` is resolved here and
every other path as before. mmengine's own route for a ``pkg::`` base (its
``MODULE2PACKAGE`` table) is not taken, for two reasons: it finds the package
through its installed distribution, which an editable install does not place
beside its code; and it gives the base's dicts the scope ``mmseg_dnc``, which
has no registry, so mmengine would build them from its root registries, which
hold none of their types (``CamVidDataset is not in the mmengine::dataset
registry``). Every type in these configs is in mmseg's registries (this
package registers into them), so their scope is ``mmseg``, as for an
``mmseg::`` base. The prefix works in a process that has imported
``mmseg_dnc`` before it reads the config (this package's tools do).

``mmengine.hub.get_config`` and ``get_model``, mmengine's API for package
configs, take the prefix too: importing ``mmseg_dnc`` replaces ``get_config``
in ``mmengine.hub`` (and in its module, whose ``get_model`` calls it) with one
that resolves ``mmseg_dnc::`` here, from a wheel or a checkout alike, and
passes every other path on. ``get_model`` then calls
``mmseg_dnc.utils.register_all_modules`` (the scope becomes ``mmseg``) and
builds the model without loading any weights unless ``pretrained=True``
(``published_weights``: none are published yet). ``mmseg_dnc`` is also entered
in ``MODULE2PACKAGE``, mmengine's table of packages with configs: mmengine's
own ``get_config``, imported from ``mmengine.hub`` before ``mmseg_dnc`` was,
then takes the prefix from an installed wheel (whose ``.mim`` is where it
looks), though not from a checkout.
"""
import os
import os.path as osp
from typing import Optional, Tuple

import mmengine.hub
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.fileio import load
from mmengine.hub import hub as hub_module  # whose get_model calls its get_config

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


def published_weights(path: str) -> str:
    """The trained weights that the model index lists for the config ``path``
    (``mmseg_dnc::dnc/x.py``), as mmengine's ``get_config(pretrained=True)``
    reads them from a metafile's ``Weights``.

    Raises:
        ValueError: the index lists none for it.
    """
    # a wheel's .mim and a checkout's root both hold model-index.yml and configs/
    mim_root = osp.dirname(config_root())
    config = osp.relpath(config_path(path), mim_root)
    for metafile in load(osp.join(mim_root, 'model-index.yml'))['Import']:
        for model in load(osp.join(mim_root, metafile))['Models']:
            if model.get('Config') == config and model.get('Weights'):
                return model['Weights']
    raise ValueError(f'{path}: no trained weights are published for it (model-index.yml '
                     f'lists none); build it with pretrained=False and train it, or load '
                     f'your own checkpoint.')


def get_config(cfg_path: str, pretrained: bool = False) -> Config:
    """mmengine's ``mmengine.hub.get_config`` (a package's config by
    ``PKG::RELATIVE/PATH.py``; with ``pretrained``, its published weights as
    ``cfg.model_path``), with ``mmseg_dnc::`` resolved here."""
    if not cfg_path.startswith(PREFIX):
        return get_config.mmengine_version(cfg_path, pretrained)
    cfg = Config.fromfile(config_path(cfg_path))
    if pretrained:
        cfg.model_path = published_weights(cfg_path)
    return cfg


def install() -> None:
    """Make mmengine resolve ``mmseg_dnc::`` in ``_base_`` and in
    ``mmengine.hub.get_config`` and ``get_model`` (once per process)."""
    if getattr(Config._get_cfg_path, 'mmengine_version', None) is None:
        _get_cfg_path.mmengine_version = Config._get_cfg_path
        Config._get_cfg_path = staticmethod(_get_cfg_path)
    if getattr(hub_module.get_config, 'mmengine_version', None) is None:
        get_config.mmengine_version = hub_module.get_config
        hub_module.get_config = mmengine.hub.get_config = get_config
    MODULE2PACKAGE.setdefault('mmseg_dnc', 'mmseg_dnc')


install()
