"""The one place a run's config is made: for the train/test tools, the main
job, the snap tool and the benchmarks alike.

:func:`prepare_config`: the config file (a path, ``mmseg_dnc::dnc/x.py``, or a
``Config``, copied) + options + data root + work dir + ``--amp``, checked
(num_classes; image folders; with ``--resume``, that there is something to
resume), and rewritten for the CPU when there is no CUDA
(:func:`mmseg_dnc.utils.adapt_to_cpu`).
"""
import copy
import logging
import os.path as osp
from typing import Optional, Sequence, Union

from mmengine.config import Config
from mmengine.logging import print_log

from mmseg_dnc.package_configs import resolve_config
from mmseg_dnc.utils import adapt_to_cpu
from .config_checks import LOADERS, check_dataset_folders, check_num_classes


def prepare_config(config: Union[str, Config], *, cfg_options: Optional[dict] = None,
                   work_dir: Optional[str] = None, data_root: Optional[str] = None,
                   launcher: str = 'none', amp: bool = False, resume: bool = False,
                   check_folders: Sequence[str] = ()) -> Config:
    """A run's config, ready for ``Runner.from_cfg``.

    Args:
        config (str | Config): a config file, ``mmseg_dnc::...``, or a Config
            (not changed: a copy is prepared).
        cfg_options (dict, optional): ``--cfg-options``, merged in.
        work_dir (str, optional): else the config's, else
            ``work_dirs/<config name>``.
        data_root (str, optional): the data root of every dataloader's dataset.
        launcher (str): ``--launcher``; on a CPU, ``'pytorch'`` opens the gloo group.
        amp (bool): ``--amp``: AmpOptimWrapper (bfloat16 autocast on a CPU).
        resume (bool): ``--resume``: there must be something to resume.
        check_folders (Sequence[str]): the dataloaders whose image folders
            must exist (those the run will load).
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        config = resolve_config(config)
        cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        for loader in LOADERS:
            if cfg.get(loader):
                cfg[loader].dataset.data_root = data_root
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        name = osp.splitext(osp.basename(cfg.filename))[0] if cfg.filename else 'run'
        cfg.work_dir = osp.join('./work_dirs', name)
    if amp:
        enable_amp(cfg)
    if resume:
        check_resumable(cfg)
    check_num_classes(cfg)
    check_dataset_folders(cfg, [name for name in check_folders if cfg.get(name)])
    return adapt_to_cpu(cfg, launcher)


def enable_amp(cfg: Config) -> None:
    """``--amp``, as mmseg's train.py does it: AmpOptimWrapper, dynamic loss scale."""
    wrapper = cfg.optim_wrapper.type
    if wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.',
                  logger='current', level=logging.WARNING)
    elif wrapper != 'OptimWrapper':
        raise ValueError(f'--amp needs optim_wrapper.type=OptimWrapper, got {wrapper}.')
    else:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'


def check_resumable(cfg: Config) -> None:
    """``--resume`` needs something to resume: ``load_from``, or a
    ``last_checkpoint`` file in the work dir that names a checkpoint.

    mmengine starts from scratch, after one INFO line, when the work dir has
    no ``last_checkpoint``, and reads an empty one as the checkpoint ``''``.

    Raises:
        FileNotFoundError: nothing to resume, or ``last_checkpoint`` names a missing file.
        ValueError: ``last_checkpoint`` is empty.
    """
    if cfg.get('load_from'):
        return
    last = osp.join(cfg.work_dir, 'last_checkpoint')
    fixes = ('To start a new run, drop --resume; to resume a checkpoint by its path, add '
             '--cfg-options load_from=CHECKPOINT.')
    if not osp.isfile(last):
        raise FileNotFoundError(
            f'--resume: nothing to resume in the work dir {cfg.work_dir}: it has no '
            f'last_checkpoint file (no checkpoint was saved there). {fixes}')
    with open(last, encoding='utf-8') as f:
        named = f.read().strip()
    if not named:
        raise ValueError(
            f'--resume: {last} is empty, so it names no checkpoint to resume. Write the path '
            f'of the checkpoint to resume into it (e.g. {osp.join(cfg.work_dir, "iter_N.pth")}). '
            + fixes)
    if '://' not in named and not osp.exists(osp.expanduser(named)):
        raise FileNotFoundError(
            f'--resume: {last} names {named}, which does not exist. Write the path of an '
            f'existing checkpoint into it. {fixes}')
