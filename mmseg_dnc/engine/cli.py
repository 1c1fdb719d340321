"""What tools/train.py and tools/test.py share: mmseg's flags and config set-up."""
import argparse
import logging
import os
import os.path as osp
from typing import Sequence

import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from mmseg_dnc.package_configs import resolve_config
from mmseg_dnc.utils import adapt_to_cpu
from .config_checks import check_dataset_folders, check_num_classes


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags mmseg's train and test tools both have."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy pairs merged into it, '
        'e.g. train_cfg.max_iters=100 or key="[a,b]"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


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


def load_config(args: argparse.Namespace, loaders: Sequence[str] = ()) -> Config:
    """Config file (a path, or ``mmseg_dnc::dnc/x.py``) + --cfg-options + work
    dir (CLI > file > config name) + --amp, checked (num_classes; the image
    folders of the datasets of ``loaders``, which the tool will load; with
    --resume, that there is something to resume), rewritten for the CPU when
    there is no CUDA."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    config_file = resolve_config(args.config)
    cfg = Config.fromfile(config_file)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_file))[0])
    if getattr(args, 'amp', False):
        enable_amp(cfg)
    if getattr(args, 'resume', False):
        check_resumable(cfg)
    check_num_classes(cfg)
    check_dataset_folders(cfg, [name for name in loaders if cfg.get(name)])
    return adapt_to_cpu(cfg, args.launcher)


def finish_distributed() -> None:
    """Wait for every rank, then close the process group.

    Without it a rank that is done (rank 0 still writing the last checkpoint)
    exits with the group open, and gloo can abort that process at exit
    ("terminate called without an active exception"), which makes torchrun
    report the run as failed and stop rank 0, mid-write.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
