"""What glibc's malloc settings cost a CPU training run: the main job's model
(EfficientNet-Lite0 + SegFormer decoder, DNC head, CamVid crops of 240x320,
batch 4), trained for ``--iters`` iterations in fresh processes that take
turns: glibc's own settings (``MMSEG_DNC_MALLOC=glibc``) and the tools' default
(freed memory kept for the next step, ``mmseg_dnc.utils.cpu.keep_freed_memory``).

Per run: the median wall time of a step (after ``--skip`` warm-up steps), and
per step the process's minor page faults and kernel CPU time (getrusage).
Prints a markdown table; ``--out`` writes JSON. Run it alone: the machine's
speed drifts by 10-15% over minutes, hence alternating runs.

    python bench/cpu_malloc.py [--iters 70] [--pairs 2] [--data-root DIR] [--out FILE]
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'dnc', 'segformer_efficientnet-lite0_camvid.py')


def one_run(iters: int, skip: int, data_root: str, work_dir: str) -> dict:
    """Train ``iters`` steps in this process; per-step medians after ``skip``."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import mmseg_dnc  # noqa: F401
    from mmseg_dnc.engine import prepare_config

    class Steps(Hook):
        def __init__(self):
            self.rows = []  # (wall s, minor faults, kernel CPU s) of each step

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            self.start = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            t0, r0 = self.start
            r = resource.getrusage(resource.RUSAGE_SELF)
            self.rows.append((time.perf_counter() - t0, r.ru_minflt - r0.ru_minflt,
                              r.ru_stime - r0.ru_stime))

    cfg = prepare_config(CONFIG, data_root=data_root, work_dir=work_dir)
    cfg.train_cfg.max_iters, cfg.train_cfg.val_interval = iters, iters + 1
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=iters + 1)
    runner = Runner.from_cfg(cfg)
    steps = Steps()
    runner.register_hook(steps, priority='LOWEST')
    runner.train()
    rows = steps.rows[skip:]
    return dict(step_s=statistics.median(r[0] for r in rows),
                faults=statistics.median(r[1] for r in rows),
                kernel_s=statistics.median(r[2] for r in rows), steps=len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--iters', type=int, default=70)
    parser.add_argument('--skip', type=int, default=10, help='warm-up steps not counted')
    parser.add_argument('--pairs', type=int, default=2)
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'bench_cpu_malloc'))
    parser.add_argument('--out', default=None)
    parser.add_argument('--one-run', default=None, help=argparse.SUPPRESS)  # a child's setting
    args = parser.parse_args()
    if args.one_run:
        print(json.dumps(one_run(args.iters, args.skip, args.data_root, args.work_dir)))
        return
    import torch

    from camvid_accuracy import head_commit  # bench/
    from camvid_pretrained import cpu_name
    from mmseg_dnc.demo import find_camvid
    data_root = find_camvid(args.data_root, ROOT)
    runs = []
    for pair in range(args.pairs):
        for setting in ('glibc', 'keep'):
            proc = subprocess.run(
                [sys.executable, __file__, '--one-run', setting, '--iters', str(args.iters),
                 '--skip', str(args.skip), '--data-root', data_root,
                 '--work-dir', osp.join(args.work_dir, f'{setting}_{pair}')],
                env=dict(os.environ, MMSEG_DNC_MALLOC=setting), capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f'the {setting} run failed:\n{proc.stderr[-3000:]}')
            runs.append(dict(json.loads(proc.stdout.splitlines()[-1]), setting=setting,
                             pair=pair))
            print(f'pair {pair}, {setting}: {runs[-1]}', file=sys.stderr)
    print('| malloc | pair | step (s) | page faults / step | kernel CPU / step (s) |\n'
          '|---|---:|---:|---:|---:|')
    for r in runs:
        print(f"| {r['setting']} | {r['pair']} | {r['step_s']:.3f} | {r['faults']:,.0f} | "
              f"{r['kernel_s']:.3f} |")
    mean = {s: statistics.mean(r['step_s'] for r in runs if r['setting'] == s)
            for s in ('glibc', 'keep')}
    print(f"\nmean step: glibc {mean['glibc']:.3f} s, keep {mean['keep']:.3f} s "
          f"({mean['glibc'] / mean['keep']:.2f}x)")
    if args.out:
        with open(args.out, 'w') as f:
            commit = head_commit()
            json.dump(dict(runs=runs, iters=args.iters, skip=args.skip, commit=commit,
                           cpu=cpu_name(),
                           cpu_capability=torch.backends.cpu.get_cpu_capability(),
                           threads=torch.get_num_threads()), f, indent=1)


if __name__ == '__main__':
    main()
