"""The accuracy yardstick: DNC against its parametric twin on real CamVid.

Trains configs/dnc/fcn_cgnet_camvid.py and configs/parametric/fcn_cgnet_camvid.py
(same model, data, schedule and seed; only the decode head differs) for each
seed, tests both on CamVid val (101 images, mIoU at 480x360), and prints side by
side: mIoU, mAcc, per-class IoU, learnable parameters of the decode head,
training time (median iteration time x iterations, so that a pause or other
load does not count; wall time kept as train_wall_min) and inference time; mean
and spread over seeds.

    python bench/camvid_accuracy.py [--seeds 0 1] [--data-root DIR] [--out FILE.json]
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import time

import numpy as np
import torch
from mmengine.runner import Runner

import mmseg_dnc  # noqa: F401
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from mmseg_dnc.demo import find_camvid
from mmseg_dnc.engine import prepare_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def head_commit() -> str:
    """The project's commit (short hash) for a record: what the run starts with,
    the tree may move on while it trains."""
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
HEADS = {'1x1 conv': 'configs/parametric/fcn_cgnet_camvid.py',
         'DNC': 'configs/dnc/fcn_cgnet_camvid.py'}


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """mmseg's IoUMetric, also returning each class's IoU as ``IoU.<class>``."""

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        intersect = sum(r[0] for r in results)
        union = sum(r[1] for r in results)
        for name, iou in zip(self.dataset_meta['classes'], (intersect / union).tolist()):
            metrics[f'IoU.{name}'] = 100 * iou
        return metrics


def train_and_test(config: str, seed: int, data_root: str, work_dir: str,
                   iters: int = None, options: dict = None, extra=None) -> dict:
    """Train ``config`` (merged with ``options``) with ``seed``, test it on val.

    ``extra(runner)``, if given, returns more numbers for the result.
    """
    cfg = prepare_config(osp.join(ROOT, config), cfg_options=options, data_root=data_root,
                         work_dir=work_dir)
    if iters:  # a shorter schedule, for a smoke test of this script
        cfg.train_cfg.max_iters = iters
        cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # test once, at the end
    cfg.default_hooks.checkpoint.save_best = None
    cfg.test_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
    cfg.randomness = dict(seed=seed)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    train_s = time.perf_counter() - start
    # every iteration's time (mmengine's IterTimerHook): their median times the
    # number of iterations does not count a pause or a burst of other load
    step_s = runner.message_hub.get_scalar('train/time').data[0]
    start = time.perf_counter()
    metrics = runner.test()
    test_s = time.perf_counter() - start
    head = runner.model.decode_head
    metrics.update(
        train_min=float(np.median(step_s)) * len(step_s) / 60,
        train_wall_min=train_s / 60,
        infer_ms=1000 * test_s / len(runner.test_dataloader.dataset),
        head_params=sum(p.numel() for p in head.parameters() if p.requires_grad))
    if extra is not None:
        metrics.update(extra(runner))
    return {key: float(value) for key, value in metrics.items()}


def summary(values) -> str:
    """Mean ± standard deviation over seeds ('' for none)."""
    if not values:
        return ''
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def table_rows(classes):
    """(label, metric key) of the per-class table: the twin against DNC."""
    return [('mIoU', 'mIoU'), ('mAcc', 'mAcc'), ('aAcc', 'aAcc')] + \
        [(f'IoU {c}', f'IoU.{c}') for c in classes] + \
        [('decode head learnable parameters', 'head_params'),
         ('training time (min)', 'train_min'), ('inference (ms per val image)', 'infer_ms')]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--data-root')
    parser.add_argument('--iters', type=int, help='override the schedule (smoke test)')
    parser.add_argument('--work-dir', default='work_dirs/bench_camvid')
    parser.add_argument('--out', default='work_dirs/bench_camvid/results.json')
    args = parser.parse_args()
    data_root = find_camvid(args.data_root, ROOT)
    runs = {name: [] for name in HEADS}
    for seed in args.seeds:
        for name, config in HEADS.items():
            tag = 'dnc' if name == 'DNC' else 'parametric'
            runs[name].append(train_and_test(config, seed, data_root,
                                             osp.join(args.work_dir, f'{tag}_seed{seed}'),
                                             args.iters))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(seeds=args.seeds, runs=runs), f, indent=1)

    classes = [k[4:] for k in runs['DNC'][0] if k.startswith('IoU.')]
    rows = table_rows(classes)
    print(f'\nCamVid val (101 images, 480x360), seeds {args.seeds}; '
          f'{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}')
    print('| | 1x1 conv head | DNC head |\n|---|---:|---:|')
    for label, key in rows:
        cells = []
        for name in HEADS:
            values = [run[key] for run in runs[name]]
            cells.append(str(int(values[0])) if key == 'head_params' else summary(values))
        print(f'| {label} | {cells[0]} | {cells[1]} |')
    gap = np.mean([d['mIoU'] - p['mIoU'] for d, p in zip(runs['DNC'], runs['1x1 conv'])])
    print(f'\nDNC - 1x1 conv, mIoU, mean over seeds: {gap:+.2f}')


if __name__ == '__main__':
    main()
