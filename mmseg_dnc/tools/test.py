"""Test a segmentor and print per-class IoU, mIoU, mAcc and aAcc: mmseg's
tools/test.py, with DNC registered, safe checkpoint loading and CPU support.

    python -m mmseg_dnc.tools.test CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

CONFIG: a config file, or one that comes with the package as
``mmseg_dnc::dnc/fcn_cgnet_camvid.py``.
"""
import argparse
from typing import Optional, Sequence

from mmengine.config import Config
from mmengine.runner import Runner

import mmseg_dnc  # noqa: F401  (DNCDecodeHead, safe checkpoint loading, mmseg_dnc::)
from mmseg_dnc.engine import add_common_args, finish_distributed, load_config


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """mmseg's test flags (``argv`` defaults to the command line)."""
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path, or mmseg_dnc::dnc/x.py')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', type=str,
                        help='directory to save the predicted masks in')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir',
                        help='directory to save painted images in')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per image shown')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    return add_common_args(parser).parse_args(argv)


def trigger_visualization_hook(cfg: Config, args: argparse.Namespace) -> Config:
    """--show / --show-dir: the config's visualization hook draws (and shows or saves)."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError("--show/--show-dir need default_hooks.visualization="
                           "dict(type='SegVisualizationHook') in the config.")
    hooks.visualization.draw = True
    if args.show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = args.wait_time
    if args.show_dir:
        cfg.visualizer.save_dir = args.show_dir
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Test as the command line ``argv`` says."""
    args = parse_args(argv)
    cfg = load_config(args, loaders=('test_dataloader',))
    cfg.load_from = args.checkpoint
    # the checkpoint must fit the DNC head: checked on the very dict mmengine loads
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), dict(type='CheckpointFitsHook')]
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    Runner.from_cfg(cfg).test()
    finish_distributed()


if __name__ == '__main__':
    main()
