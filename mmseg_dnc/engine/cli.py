"""What tools/train.py and tools/test.py share: mmseg's flags, their config, the end of a
distributed run."""
import argparse
import gc
import os
from typing import Sequence

import torch.distributed as dist
from mmengine.config import Config, DictAction

from mmseg_dnc.utils.dist import group_open
from .run_config import prepare_config


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


def load_config(args: argparse.Namespace, loaders: Sequence[str] = ()) -> Config:
    """The tools' run config, from their flags (:func:`~.run_config.prepare_config`):
    the datasets of ``loaders``, which the tool will load, have their image
    folders checked."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return prepare_config(args.config, cfg_options=args.cfg_options, work_dir=args.work_dir,
                          launcher=args.launcher, amp=getattr(args, 'amp', False),
                          resume=getattr(args, 'resume', False), check_folders=loaders)


def finish_distributed() -> None:
    """Wait for every rank, then close the process group.

    Without it a rank that is done (rank 0 still writing the last checkpoint)
    exits with the group open, and gloo can abort that process at exit
    ("terminate called without an active exception"), which makes torchrun
    report the run as failed and stop rank 0, mid-write. The caller drops its
    runner first: DDP's reducer holds the group, and a group whose last
    reference goes only at interpreter shutdown joins gloo's threads then,
    which can abort the same way; the collection here frees the runner's
    reference cycles while the interpreter is whole.
    """
    if group_open():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
