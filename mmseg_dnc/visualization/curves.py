"""Training curves from the scalars mmengine's LocalVisBackend writes."""
import json
from collections import defaultdict
from typing import Dict, List, Tuple

from matplotlib.figure import Figure

LOSS_KEYS = ('loss', 'decode.loss_ce', 'decode.loss_ppc', 'decode.loss_ppd', 'aux.loss_ce')


def read_scalars(path: str) -> Dict[str, List[Tuple[int, float]]]:
    """``vis_data/scalars.json`` (one JSON object per line) -> {key: [(step, value)]}."""
    series = defaultdict(list)
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            step = record.pop('step', None)
            for key, value in record.items():
                if isinstance(value, (int, float)):
                    series[key].append((step, float(value)))
    return dict(series)


def plot_training_curves(scalars_path: str, path: str, title: str = '') -> str:
    """Losses (log scale) and validation mIoU / mAcc against iterations."""
    series = read_scalars(scalars_path)
    fig = Figure(figsize=(12, 4))
    ax_loss, ax_val = fig.subplots(1, 2)
    for key in LOSS_KEYS:
        if key in series:
            steps, values = zip(*series[key])
            ax_loss.plot(steps, values, label=key, lw=1.2)
    ax_loss.set_yscale('log')
    ax_loss.set_xlabel('iteration')
    ax_loss.set_title('training losses')
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    for key in ('mIoU', 'mAcc'):
        if key in series:
            steps, values = zip(*series[key])
            ax_val.plot(steps, values, marker='o', label=key)
            ax_val.annotate(f'{values[-1]:.1f}', (steps[-1], values[-1]),
                            textcoords='offset points', xytext=(4, 4), fontsize=9)
    ax_val.set_xlabel('iteration')
    ax_val.set_ylabel('%')
    ax_val.set_title('validation')
    ax_val.legend(fontsize=8)
    ax_val.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path
