"""The ablation's picture, from its records (bench/results/camvid_ablation.jsonl):
each DNC variant's mIoU minus the twin's at the same seed and schedule, and
that gap against how close each class's sub-centroids sit to another class's."""
import statistics
from typing import Dict, List, Tuple

from matplotlib import colormaps
from matplotlib.figure import Figure

TARGET = 1.0  # issue 11's bar: DNC ahead of the twin by 1.0 mIoU


def paired_gaps(records: List[dict]) -> Dict[Tuple[int, str], Dict[int, float]]:
    """{(iters, variant): {seed: mIoU - the twin's mIoU at that seed and iters}},
    DNC variants only, seeds the twin has."""
    twin = {(r['iters'], r['seed']): r['metrics']['mIoU'] for r in records
            if r['variant'] == 'twin'}
    gaps: Dict[Tuple[int, str], Dict[int, float]] = {}
    for r in records:
        key = (r['iters'], r['seed'])
        if r['variant'] != 'twin' and key in twin:
            gaps.setdefault((r['iters'], r['variant']), {})[r['seed']] = (
                r['metrics']['mIoU'] - twin[key])
    return gaps


def separation(records: List[dict]) -> Dict[Tuple[int, str], float]:
    """{(iters, variant): mean of the nearest-other-class cosine over the runs
    that ``paired_gaps`` pairs}."""
    gaps = paired_gaps(records)
    values: Dict[Tuple[int, str], List[float]] = {}
    for r in records:
        paired = gaps.get((r['iters'], r['variant']), {})
        if 'near_mean' in r['metrics'] and r['seed'] in paired:
            values.setdefault((r['iters'], r['variant']), []).append(r['metrics']['near_mean'])
    return {key: statistics.mean(v) for key, v in values.items()}


def plot_ablation(records: List[dict], path: str, order: List[str]) -> str:
    """Two panels, saved to ``path``; ``order`` is the variants' order (top first)."""
    gaps = paired_gaps(records)
    if not gaps:
        raise ValueError('no DNC run has a twin run at the same seed and schedule to pair with: '
                         'run the twin first (bench/camvid_ablation.py --variants twin)')
    keys = sorted(gaps, key=lambda k: (k[0], order.index(k[1]) if k[1] in order else 99))
    fig = Figure(figsize=(15, 0.45 * len(keys) + 2.2))
    ax_gap, ax_sep = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[3, 2]))
    palette = colormaps['tab20'] if len(keys) > 10 else colormaps['tab10']
    colors = {key: palette(i % palette.N) for i, key in enumerate(keys)}
    for row, key in enumerate(keys):
        seeds = gaps[key]
        y = len(keys) - 1 - row
        ax_gap.scatter(list(seeds.values()), [y] * len(seeds), color=colors[key], s=28,
                       alpha=0.7, zorder=3)
        mean = statistics.mean(seeds.values())
        ax_gap.plot([mean, mean], [y - 0.3, y + 0.3], color=colors[key], lw=3, zorder=4)
        ax_gap.annotate(f'{mean:+.2f} ({len(seeds)} seed{"s" * (len(seeds) > 1)})',
                        (mean, y + 0.3), fontsize=8, ha='center', va='bottom')
    ax_gap.set_yticks(range(len(keys)))
    ax_gap.set_yticklabels([f'{v} ({i} it.)' for i, v in reversed(keys)], fontsize=9)
    ax_gap.axvline(0, color='k', lw=1)
    ax_gap.axvline(TARGET, color='g', lw=1, ls='--', label=f'issue 11 target (+{TARGET:.1f})')
    ax_gap.set_xlabel('mIoU - the twin\'s, same seed and schedule (dots: seeds, bar: mean)')
    ax_gap.set_title('DNC variants against the 1x1 conv twin, CamVid val')
    ax_gap.legend(fontsize=8, loc='upper left')
    ax_gap.grid(axis='x', alpha=0.3)

    near = separation(records)
    for key in keys:
        if key in near:
            mean = statistics.mean(gaps[key].values())
            ax_sep.scatter(near[key], mean, color=colors[key], s=40, zorder=3)
            ax_sep.annotate(f'{key[1]} ({key[0]})', (near[key], mean), fontsize=8,
                            textcoords='offset points', xytext=(4, 3))
    ax_sep.axhline(0, color='k', lw=1)
    ax_sep.set_xlabel('cosine of a class\'s mean sub-centroid to the nearest other class\'s')
    ax_sep.set_ylabel('mean mIoU - the twin\'s')
    ax_sep.set_title('the gap against how close classes\' sub-centroids sit')
    ax_sep.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
