"""Fit against generalisation: a trained run's mIoU on the CamVid frames it
trained on (train, no augmentation, full 480x360) beside its val mIoU.

A head that is behind on val and as far behind on train learns slower (it
underfits); one level on train and behind on val generalises worse.

    python bench/camvid_fit.py RUN_DIR [RUN_DIR ...] [--data-root DIR]

RUN_DIR: a bench/camvid_pretrained.py run folder (its config and
iter_*.pth); one line per run and split goes to
bench/results/camvid_pretrained_fit.jsonl.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import sys

from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from camvid_accuracy import ROOT  # noqa: E402  (registers PerClassIoUMetric)

import mmseg_dnc  # noqa: E402,F401
from mmseg_dnc.demo import find_camvid  # noqa: E402
from mmseg_dnc.engine import prepare_config  # noqa: E402

RESULTS = osp.join(ROOT, 'bench', 'results', 'camvid_pretrained_fit.jsonl')


def run_files(run_dir: str):
    """A bench run folder's config and its last iter_N.pth checkpoint (not the
    files the explanation tools write beside it, e.g. iter_N.casebase.pth)."""
    configs = glob.glob(osp.join(run_dir, '*.py'))
    checkpoints = sorted((p for p in glob.glob(osp.join(run_dir, 'iter_*.pth'))
                          if re.fullmatch(r'iter_\d+\.pth', osp.basename(p))),
                         key=lambda p: int(osp.basename(p)[5:-4]))
    if len(configs) != 1 or not checkpoints:
        raise SystemExit(f'{run_dir}: wants one config and an iter_*.pth checkpoint')
    return configs[0], checkpoints[-1]


def score(run_dir: str, split: str, data_root: str) -> dict:
    config, checkpoint = run_files(run_dir)
    options = {'test_dataloader.dataset.data_prefix': dict(img_path=split,
                                                           seg_map_path=split + 'annot')}
    cfg = prepare_config(config, cfg_options=options, data_root=data_root,
                         work_dir=osp.join(ROOT, 'work_dirs', 'camvid_fit'))
    cfg.load_from = checkpoint
    cfg.test_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
    metrics = Runner.from_cfg(cfg).test()
    return dict(run=osp.basename(osp.normpath(run_dir)), checkpoint=osp.basename(checkpoint),
                split=split, metrics={k: round(float(v), 2) for k, v in metrics.items()})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+')
    parser.add_argument('--data-root')
    args = parser.parse_args()
    data_root = find_camvid(args.data_root, ROOT)
    lines = []
    for run in args.runs:
        for split in ('train', 'val'):
            record = score(run, split, data_root)
            os.makedirs(osp.dirname(RESULTS), exist_ok=True)
            with open(RESULTS, 'a') as f:
                f.write(json.dumps(record) + '\n')
            lines.append(f"| {record['run']} | {split} | {record['metrics']['mIoU']:.2f} |")
    print('| run | scored on | mIoU |\n|---|---|---:|\n' + '\n'.join(lines))


if __name__ == '__main__':
    main()
