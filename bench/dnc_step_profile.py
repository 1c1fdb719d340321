"""Where DNC's extra training time goes on the main job's model (issue 23):
one training step of the twin and of DNC (EfficientNet-Lite0 + SegFormer
head, CamVid, 4 crops of 240x320, bench/dnc_cost.py's builder), profiled with
torch.profiler, the head's stages marked with ``record_function``; each model
profiled twice, twin-DNC-DNC-twin.

Prints two markdown tables: CPU time per stage (each stage's total, its
callees included; the backward is not split by stage), and the operators
whose self CPU time grows most from the twin to DNC. Run it alone.

    python bench/dnc_step_profile.py [--steps 6]
"""
import argparse
import functools
import logging
import os.path as osp
import sys

import torch
from torch.profiler import profile, record_function

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

STAGES = [  # (module, owner, function): the head's training stages
    ('mmseg_dnc.models.dnc_head', 'DNCDecodeHead', 'loss'),
    ('mmseg.models.decode_heads.segformer_head', 'SegformerHead', 'forward'),
    ('mmseg_dnc.models.dnc_head', 'DNCDecodeHead', 'cls_seg'),
    ('mmseg.models.decode_heads.decode_head', 'BaseDecodeHead', 'loss_by_feat'),
    ('mmseg_dnc.models.dnc_head', 'DNCDecodeHead', 'learn_subcentroids'),
    ('mmseg_dnc.models.dnc_head', None, 'labelled_pixels'),
    ('mmseg_dnc.models.dnc_head', None, 'assign_and_update'),
    ('mmseg_dnc.models.dnc_head', None, 'learning_losses'),
]


def mark(module: str, owner, name: str) -> None:
    """Wrap ``module.owner.name`` (or ``module.name``) in a record_function."""
    target = sys.modules[module] if owner is None else getattr(sys.modules[module], owner)
    function = getattr(target, name)

    @functools.wraps(function)
    def marked(*args, **kwargs):
        with record_function(f'stage:{name}'):
            return function(*args, **kwargs)
    setattr(target, name, marked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=6)
    args = parser.parse_args()
    import importlib

    import mmseg_dnc  # noqa: F401
    from mmengine.logging import MMLogger
    from mmseg.utils import register_all_modules

    from dnc_cost import build_model_case  # bench/
    from mmseg_dnc.utils.cpu import keep_freed_memory
    register_all_modules(init_default_scope=True)
    if not torch.cuda.is_available():
        keep_freed_memory()  # as the tools run on a CPU (adapt_to_cpu)
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # the weights' load report
    for module, owner, name in STAGES:
        importlib.import_module(module)
        mark(module, owner, name)
    n = args.steps
    steps = {dnc: build_model_case(dict(model='camvid', dnc=dnc, mode='train', batch=4,
                                        size=(240, 320)), 'cpu') for dnc in (False, True)}
    for step in steps.values():
        for _ in range(3):
            step()
    stages, ops = {False: {}, True: {}}, {False: {}, True: {}}
    # twin, DNC, DNC, twin: whichever runs second in a process ran up to 20%
    # slower in trials, so each takes both places and the two are averaged
    for dnc in (False, True, True, False):
        with profile() as prof:
            for _ in range(n):
                with record_function('stage:whole step'):
                    steps[dnc]()
        for e in prof.key_averages():
            into, key, ms = (stages[dnc], e.key[6:], e.cpu_time_total) \
                if e.key.startswith('stage:') else (ops[dnc], e.key, e.self_cpu_time_total)
            into[key] = into.get(key, 0.0) + ms / (2 * n) / 1e3
    print(f'One training step, mean of 2 x {n} (ms of CPU time, the stage and its '
          'callees):\n')
    print('| stage | twin | DNC |\n|---|---:|---:|')
    for name in ['whole step'] + [s[2] for s in STAGES]:
        cells = [f'{stages[d][name]:.1f}' if name in stages[d] else '' for d in (False, True)]
        print(f'| {name} | {cells[0]} | {cells[1]} |')
    grown = sorted(set(ops[False]) | set(ops[True]),
                   key=lambda k: ops[False].get(k, 0) - ops[True].get(k, 0))
    print('\nOperators whose self CPU time grows most (ms a step):\n')
    print('| operator | twin | DNC | DNC - twin |\n|---|---:|---:|---:|')
    for key in grown[:12]:
        a, b = ops[False].get(key, 0.0), ops[True].get(key, 0.0)
        print(f'| {key} | {a:.1f} | {b:.1f} | {b - a:+.1f} |')
    total = [sum(ops[d].values()) for d in (False, True)]
    print(f'\nAll operators, self CPU: twin {total[0]:.1f} ms, DNC {total[1]:.1f} ms a step')


if __name__ == '__main__':
    main()
