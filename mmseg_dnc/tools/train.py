"""Train a segmentor: mmseg's tools/train.py, with DNC registered and CPU support.

    python -m mmseg_dnc.tools.train CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

CONFIG: a config file, or one that comes with the package as
``mmseg_dnc::dnc/fcn_cgnet_camvid.py``.
"""
import argparse
from typing import Optional, Sequence

from mmengine.runner import Runner

import mmseg_dnc  # noqa: F401  (DNCDecodeHead, safe checkpoint loading, mmseg_dnc::)
from mmseg.registry import RUNNERS
from mmseg_dnc.engine import add_common_args, finish_distributed, load_config


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """mmseg's train flags (``argv`` defaults to the command line)."""
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path, or mmseg_dnc::dnc/x.py')
    parser.add_argument('--resume', action='store_true', default=False,
                        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    return add_common_args(parser).parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Train as the command line ``argv`` says."""
    args = parse_args(argv)
    # --amp: AmpOptimWrapper (bfloat16 on a CPU); the data folders it will read are checked
    cfg = load_config(args, loaders=('train_dataloader', 'val_dataloader'))
    cfg.resume = args.resume
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()
    del runner  # the model's DDP reducer holds the process group (finish_distributed)
    finish_distributed()


if __name__ == '__main__':
    main()
