"""Which sub-centroid learning mechanisms make DNC learn every class: an
ablation on real CamVid, against the parametric twin.

Each variant is configs/dnc/fcn_cgnet_camvid.py with some DNC keys set (the
parametric twin is configs/parametric/fcn_cgnet_camvid.py), trained with the
same seeds and schedule and tested on CamVid val (101 images, 480x360). A
finished run appends one line to ``bench/results/camvid_ablation.jsonl``
(committed), and a run already recorded there is skipped, so the table grows
across sessions and machines; ``--table`` only prints it. A run is recorded by
its config, head keys, seed and schedule, not by the code's commit (kept in the
record): after a change to how sub-centroids learn, remove the records it
invalidates.

    python bench/camvid_ablation.py [--variants twin reference combined ...]
        [--seeds 0 1 2] [--iters 600] [--table] [--data-root DIR]
    python bench/camvid_ablation.py --compare 'kmeans++ start'   # class by class
    python bench/camvid_ablation.py --figure docs/camvid_ablation.png   # the picture
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
from typing import Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from ablation_figure import paired_gaps, plot_ablation  # noqa: E402
from camvid_accuracy import ROOT, head_commit, summary, table_rows, train_and_test  # noqa: E402
from mechanisms import ALL_MECHANISMS, MECHANISMS, REFERENCE, with_reference  # noqa: E402

import mmseg_dnc  # noqa: E402,F401
from mmseg_dnc.demo import find_camvid  # noqa: E402
from mmseg_dnc.explain import build_case_base, diversity, one_by_one, training_set  # noqa: E402

RESULTS = osp.join(ROOT, 'bench', 'results', 'camvid_ablation.jsonl')
TWIN = 'configs/parametric/fcn_cgnet_camvid.py'
DNC = 'configs/dnc/fcn_cgnet_camvid.py'
# name -> (config, decode head keys[, custom hooks]); 'reference' is the paper's settings
VARIANTS: Dict[str, tuple] = {
    'twin': (TWIN, {}),
    'reference': (DNC, dict(REFERENCE)),
    **{name: (DNC, with_reference(keys)) for name, keys in MECHANISMS.items()},
    'kmeans++ + warm-up': (DNC, with_reference(dict(subcentroid_init='kmeans++',
                                                    momentum_warmup=True))),
    'combined': (DNC, with_reference(ALL_MECHANISMS)),
    # dead restart as vector-quantize-pytorch does it: on random pixels of the class
    'dead restart on random pixels': (DNC, with_reference(dict(
        MECHANISMS['dead restart'], restart_on='random'))),
    # K per class from pixel frequency (tools/k_per_class.py on CamVid train), mean 10
    'kmeans++ + K from frequency': (DNC, with_reference(dict(
        subcentroid_init='kmeans++', num_subcentroids=[17, 20, 4, 20, 9, 13, 4, 4, 10, 3, 2]))),
    # the control for K from frequency: as few sub-centroids for every class
    'kmeans++ + K=4': (DNC, with_reference(dict(subcentroid_init='kmeans++',
                                                num_subcentroids=4))),
    # the last quarter of the schedule trains on a classifier of real pixels
    'kmeans++ + real pixels': (DNC, with_reference(dict(subcentroid_init='kmeans++')),
                               [dict(type='SnapSubcentroidsHook', begin=0.75)]),
}
RARE = ['Pole', 'SignSymbol', 'Pedestrian', 'Bicyclist']


def recorded() -> List[dict]:
    if not osp.isfile(RESULTS):
        return []
    with open(RESULTS) as f:
        return [json.loads(line) for line in f if line.strip()]


def same_run(a: dict, b: dict) -> bool:
    return all(a[key] == b[key] for key in ('config', 'head', 'seed', 'iters')) and \
        a.get('hooks') == b.get('hooks')


def variant(name: str) -> dict:
    """What a variant runs: config, head keys and (when it has some) hooks."""
    config, keys, *hooks = VARIANTS[name]
    return dict(config=config, head=keys, **({'hooks': hooks[0]} if hooks else {}))


def schedule(iters: int) -> dict:
    """The twin's schedule stretched to ``iters`` (warm-up 50, then poly)."""
    if iters == 600:
        return {}
    return {'train_cfg.max_iters': iters, 'param_scheduler.1.end': iters}


def subcentroid_stats(runner) -> dict:
    """Diversity of the trained sub-centroids, over the training set."""
    runner.model.dataset_meta = runner.test_dataloader.dataset.metainfo
    return model_stats(runner.model, runner.cfg)


def model_stats(model, cfg) -> dict:
    """:func:`subcentroid_stats` of ``model`` (its ``dataset_meta`` set) over
    ``cfg``'s training set; {} for a model without sub-centroids."""
    head = model.decode_head
    if not hasattr(head, 'sub_centroids'):
        return {}
    case_base = build_case_base(model, one_by_one(training_set(cfg)), top_n=1, progress=False)
    stats = diversity(head.sub_centroids.cpu(), case_base['wins'], case_base['active'])
    out = {}
    for c, name in enumerate(case_base['classes']):
        out[f'cos.{name}'] = float(stats['mean_pairwise_cosine'][c])
        out[f'effk.{name}'] = float(stats['effective_k'][c])
    out['mean_pairwise_cosine'] = float(stats['mean_pairwise_cosine'].mean())
    out['effective_k'] = float(stats['effective_k'].mean())
    out.update(class_separation(head.sub_centroids.cpu(), case_base['classes'],
                                case_base['active']))
    return out


def class_separation(sub_centroids, classes, active=None) -> dict:
    """How close each class's sub-centroids come to another class's: the
    cosine of its mean direction to the nearest other class's
    (``near.<class>``) and which class that is (``nearest.<class>``, an index);
    ``active`` (C, K) bool: each class's used slots (K per class)."""
    weight = torch.ones(sub_centroids.shape[:2]) if active is None else active.float()
    means = torch.nn.functional.normalize(
        (sub_centroids.float() * weight[..., None]).sum(dim=1), dim=-1)
    cos = means @ means.t()
    cos.fill_diagonal_(-2.0)
    near, which = cos.max(dim=1)
    out = {f'near.{name}': float(near[c]) for c, name in enumerate(classes)}
    out.update({f'nearest.{name}': float(which[c]) for c, name in enumerate(classes)})
    out['near_mean'] = float(near.mean())
    return out


def run(name: str, seed: int, iters: int, data_root: str, work_dir: str) -> dict:
    what = variant(name)
    options = {f'model.decode_head.{k}': v for k, v in what['head'].items()}
    if 'hooks' in what:
        options['custom_hooks'] = what['hooks']
    options.update(schedule(iters))
    # the code the run starts with (the tree may move on while it trains)
    commit = head_commit()
    metrics = train_and_test(what['config'], seed, data_root,
                             osp.join(work_dir, f'{name.replace(" ", "_")}_{iters}_s{seed}'),
                             options=options, extra=subcentroid_stats)
    return dict(variant=name, **what, seed=seed, iters=iters,
                metrics=metrics, commit=commit, machine=platform.machine(),
                threads=torch.get_num_threads(), torch=torch.__version__)


def table(records: List[dict]) -> str:
    rows = []
    groups: Dict[tuple, List[dict]] = {}
    for record in records:
        groups.setdefault((record['iters'], record['variant']), []).append(record)
    order = list(VARIANTS)
    lines = ['| iters | variant | seeds | mIoU | mAcc | ' + ' | '.join(f'IoU {c}' for c in RARE)
             + ' | mean pairwise cos | effective K | nearest other class cos | train (min) |',
             '|---:|---|---|' + '---:|' * (6 + len(RARE))]
    for (iters, variant), group in sorted(groups.items(),
                                          key=lambda kv: (kv[0][0], order.index(kv[0][1])
                                                          if kv[0][1] in order else 99)):
        group = sorted(group, key=lambda r: r['seed'])
        m = [r['metrics'] for r in group]
        cells = [str(iters), variant, ' '.join(str(r['seed']) for r in group),
                 summary([x['mIoU'] for x in m]), summary([x['mAcc'] for x in m])]
        cells += [summary([x[f'IoU.{c}'] for x in m]) for c in RARE]
        cells += [f"{statistics.mean(x['mean_pairwise_cosine'] for x in m):.3f}"
                  if 'mean_pairwise_cosine' in m[0] else '',
                  f"{statistics.mean(x['effective_k'] for x in m):.1f}"
                  if 'effective_k' in m[0] else '',
                  f"{statistics.mean(x['near_mean'] for x in m):.2f}"
                  if all('near_mean' in x for x in m) else '',
                  # a run whose time was not a speed has train_min None
                  summary([x['train_min'] for x in m if x.get('train_min') is not None])]
        rows.append((iters, variant))
        lines.append('| ' + ' | '.join(cells) + ' |')
    paired = paired_gaps(records)
    gaps = [f'{iters} iters, {variant}: {statistics.mean(paired[iters, variant].values()):+.2f} '
            f'mIoU against the twin (seeds paired: {len(paired[iters, variant])})'
            for iters, variant in rows if (iters, variant) in paired]
    return '\n'.join(lines + [''] + gaps)


def compare(records: List[dict], name: str, iters: int = 600) -> str:
    """The twin against variant ``name``, class by class, over the seeds both
    have (the per-class table of docs/results.md)."""
    runs = {v: {r['seed']: r['metrics'] for r in records
                if r['variant'] == v and r['iters'] == iters} for v in ('twin', name)}
    seeds = sorted(set(runs['twin']) & set(runs[name]))
    if not seeds:
        return f'no seed recorded for both the twin and {name!r} at {iters} iterations'
    first = runs[name][seeds[0]]
    classes = [k[4:] for k in first if k.startswith('IoU.')]
    rows = table_rows(classes)
    lines = [f'CamVid val, {iters} iterations, seeds {seeds}',
             f'| | 1x1 conv head (twin) | DNC ({name}) |', '|---|---:|---:|']
    for label, key in rows:
        cells = []
        for variant in ('twin', name):
            values = [runs[variant][s][key] for s in seeds
                      if runs[variant][s].get(key) is not None]
            cells.append(str(int(values[0])) if key == 'head_params' else summary(values))
        lines.append(f'| {label} | {cells[0]} | {cells[1]} |')
    gap = statistics.mean(runs[name][s]['mIoU'] - runs['twin'][s]['mIoU'] for s in seeds)
    lines.append(f'\nDNC - twin, mIoU, mean over seeds {seeds}: {gap:+.2f}')
    return '\n'.join(lines)


def main():
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--data-root')
    parser.add_argument('--work-dir', default='work_dirs/bench_ablation')
    parser.add_argument('--table', action='store_true', help='print the recorded table only')
    parser.add_argument('--compare', metavar='VARIANT', choices=list(VARIANTS),
                        help='print the twin against VARIANT class by class (recorded runs)')
    parser.add_argument('--figure', metavar='PNG',
                        help='draw the recorded runs against the twin into PNG')
    parser.add_argument('--results', default=None, help='the results file (JSON lines)')
    args = parser.parse_args()
    RESULTS = args.results or RESULTS
    if args.figure:
        print(plot_ablation(recorded(), args.figure, list(VARIANTS)))
        return
    if args.compare:
        print(compare(recorded(), args.compare, args.iters))
        return
    if not args.table:
        data_root = find_camvid(args.data_root, ROOT)
        for seed in args.seeds:
            for name in args.variants:
                wanted = dict(variant(name), seed=seed, iters=args.iters)
                if any(same_run(r, wanted) for r in recorded()):
                    print(f'recorded already: {name}, seed {seed}, {args.iters} iters')
                    continue
                print(f'running: {name}, seed {seed}, {args.iters} iters', flush=True)
                result = run(name, seed, args.iters, data_root, args.work_dir)
                os.makedirs(osp.dirname(RESULTS), exist_ok=True)
                with open(RESULTS, 'a') as f:
                    f.write(json.dumps(result) + '\n')
                print(f"done: {name}, seed {seed}: mIoU {result['metrics']['mIoU']:.2f}",
                      flush=True)
    print(table(recorded()))


if __name__ == '__main__':
    main()
