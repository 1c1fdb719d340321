"""Case-based pictures: why a pixel got its class, and what each sub-centroid
stands for, shown as real training patches from the case base.

Shape legend: C classes, K sub-centroids per class, T case-base pixels per
sub-centroid, h, w feature size, H, W image size.
"""
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from mmseg_dnc.models import dnc_core
from mmseg_dnc.models.provenance import UntrustedSourceError, check_pixel
from mmseg_dnc.visualization.colors import boundaries, colorize, subcentroid_colors
from mmseg_dnc.visualization.geometry import to_original_size, unpadded_feature_size
from .casebase import used_slots
from .data import read_rgb


@lru_cache(maxsize=64)
def _image(path: str) -> np.ndarray:
    image = read_rgb(path)
    if image is None:
        raise UntrustedSourceError(f'{path} cannot be decoded as an image: the case base or '
                                   'checkpoint that names it is not this dataset\'s.')
    return image


def patch(path: str, y: int, x: int) -> np.ndarray:
    """A square crop of a training image centred on (y, x), a sixth of its
    shorter side wide, padded with grey at the borders. ``path`` must come
    resolved from :func:`~mmseg_dnc.explain.load_case_base`; (y, x) is
    checked against the image."""
    image = _image(path)
    check_pixel(image.shape, y, x, path)
    half = max(12, min(image.shape[:2]) // 12)
    padded = np.pad(image, ((half, half), (half, half), (0, 0)), constant_values=128)
    return padded[y:y + 2 * half, x:x + 2 * half]


@torch.no_grad()
def analyse(model, data: dict) -> dict:
    """Everything the explanation of one image needs, at the original size.

    Returns:
        dict with ``image`` (H, W, 3) RGB, ``pred`` (H, W), ``subcentroid``
        (H, W) nearest sub-centroid of the predicted class, ``margin`` (H, W)
        softmax probability of the best class minus the second, and at the
        feature resolution ``cos`` (C, h, w) nearest-sub-centroid cosine of
        every class, ``nearest`` (C, h, w), ``logits`` (C, h, w), and
        ``scale`` (sy, sx): image pixels per feature pixel.
    """
    head = model.decode_head
    model.eval()
    batch = model.data_preprocessor(data, False)
    sample = batch['data_samples'][0]
    out = head.classify(model.extract_feat(batch['inputs']))
    sub_scores, logits = out.sub_scores, out.logits
    cos = dnc_core.class_scores(sub_scores, head.num_classes, head.slot_mask)
    nearest = dnc_core.nearest_subcentroid(sub_scores, head.num_classes, head.slot_mask)
    fh, fw = unpadded_feature_size(sample.img_shape, batch['inputs'].shape[2:],
                                   logits.shape[2:])
    logits, cos, nearest = logits[0, :, :fh, :fw], cos[0, :, :fh, :fw], nearest[0, :, :fh, :fw]
    out = to_original_size(logits, nearest, data['inputs'][0], sample.ori_shape,
                           head.align_corners)
    top2 = np.sort(out.pop('prob'), axis=0)[-2:]
    out.update(margin=top2[1] - top2[0], cos=cos.cpu(), nearest=nearest.cpu(),
               logits=logits.cpu(),
               scale=(sample.ori_shape[0] / fh, sample.ori_shape[1] / fw))
    return out


def default_points(analysis: dict) -> List[Tuple[int, int]]:
    """The least and the most confident feature pixels, as image (y, x)."""
    probs = analysis['logits'].softmax(dim=0)
    top2 = probs.topk(2, dim=0).values
    margin = (top2[0] - top2[1]).flatten()
    w = analysis['logits'].shape[2]
    sy, sx = analysis['scale']
    points = []
    for index in (int(margin.argmin()), int(margin.argmax())):
        fy, fx = divmod(index, w)
        points.append((int((fy + 0.5) * sy), int((fx + 0.5) * sx)))
    return points


def decision_at(analysis: dict, y: int, x: int) -> List[dict]:
    """The best and the runner-up class at image pixel (y, x): their logit,
    nearest sub-centroid and its cosine."""
    sy, sx = analysis['scale']
    fy = min(int(y / sy), analysis['logits'].shape[1] - 1)
    fx = min(int(x / sx), analysis['logits'].shape[2] - 1)
    probs = analysis['logits'][:, fy, fx].softmax(dim=0)
    out = []
    for c in probs.topk(2).indices.tolist():
        out.append(dict(cls=c, prob=float(probs[c]), k=int(analysis['nearest'][c, fy, fx]),
                        cos=float(analysis['cos'][c, fy, fx])))
    return out


def _patch_row(axes, case_base: dict, c: int, k: int, count: int):
    for t, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if t >= min(count, case_base['image'].shape[0]) or int(case_base['image'][t, c, k]) < 0:
            continue
        img = patch(case_base['image_paths'][int(case_base['image'][t, c, k])],
                    int(case_base['y'][t, c, k]), int(case_base['x'][t, c, k]))
        ax.imshow(img)
        size = img.shape[0]
        ax.add_patch(Rectangle((size * 0.4, size * 0.4), size * 0.2, size * 0.2, fill=False,
                               edgecolor='yellow', lw=1.5))
        ax.set_title(f"{float(case_base['score'][t, c, k]):.2f}", fontsize=7, pad=1)


def _row_title(case_base: dict, c: int, k: int) -> str:
    flagged = case_base.get('border_flagged')
    border = ' (border: most of its pixels on the image edge)' if (
        flagged is not None and bool(flagged[c, k])) else ''
    return f"{case_base['classes'][c]}, sub-centroid {k}{border}"


def explanation_panel(analysis: dict, case_base: dict, palette: Sequence,
                      points: Optional[List[Tuple[int, int]]] = None, show: int = 6,
                      path: str = 'explanation.png', title: str = '') -> str:
    """One PNG: the image, prediction, nearest sub-centroid map and confidence
    map; then, per chosen pixel, the sub-centroids that decided it and the
    training patches they stand for."""
    classes = case_base['classes']
    points = points or default_points(analysis)
    k_max = analysis['nearest'].max().item() + 1
    fig = Figure(figsize=(18, 4.2 + 2.1 * len(points)))
    grid = fig.add_gridspec(1 + len(points), 1, height_ratios=[4.2] + [2.1] * len(points))
    top = grid[0].subgridspec(1, 4, wspace=0.05)
    k_colors = subcentroid_colors(k_max)
    sub = k_colors[analysis['subcentroid'] % len(k_colors)]
    sub[boundaries(analysis['pred'])] = 0
    pictures = [(analysis['image'], 'image and the explained pixels'),
                (colorize(analysis['pred'], palette), 'prediction'),
                (sub, 'nearest sub-centroid of the predicted class'),
                (analysis['margin'], 'confidence: p(best) - p(runner-up)')]
    for i, (picture, name) in enumerate(pictures):
        ax = fig.add_subplot(top[0, i])
        shown = ax.imshow(picture, cmap='magma' if i == 3 else None, vmin=0 if i == 3 else None,
                          vmax=1 if i == 3 else None)
        ax.set_title(name, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 3:
            fig.colorbar(shown, ax=ax, fraction=0.035, pad=0.01)
        for n, (y, x) in enumerate(points):
            ax.add_patch(Circle((x, y), radius=max(6, picture.shape[0] // 40), fill=False,
                                edgecolor='cyan', lw=2))
            ax.annotate(str(n + 1), (x, y), color='cyan', fontsize=12, weight='bold',
                        xytext=(8, -8), textcoords='offset points')
    for n, (y, x) in enumerate(points):
        best, second = decision_at(analysis, y, x)
        row = grid[1 + n].subgridspec(1, 2 * show + 2, wspace=0.08,
                                      width_ratios=[3.2] + [1] * show + [0.3] + [1] * show)
        text = fig.add_subplot(row[0, 0])
        text.axis('off')
        text.text(0, 0.95, (
            f'pixel {n + 1} (y={y}, x={x})\n'
            f"predicted: {classes[best['cls']]}\n"
            f"  p={best['prob']:.2f}; nearest is its\n"
            f"  sub-centroid {best['k']}, cos {best['cos']:.2f}\n"
            f"runner-up: {classes[second['cls']]}\n"
            f"  p={second['prob']:.2f}; sub-centroid {second['k']},\n"
            f"  cos {second['cos']:.2f}\n"
            'right: training pixels these\nsub-centroids stand for'),
            va='top', fontsize=9, family='monospace')
        _patch_row([fig.add_subplot(row[0, 1 + t]) for t in range(show)], case_base,
                   best['cls'], best['k'], show)
        _patch_row([fig.add_subplot(row[0, 2 + show + t]) for t in range(show)], case_base,
                   second['cls'], second['k'], show)
        fig.text(row[0, 1].get_position(fig).x0, row[0, 1].get_position(fig).y1 + 0.012,
                 _row_title(case_base, best['cls'], best['k']), fontsize=10,
                 color='green', weight='bold')
        fig.text(row[0, 2 + show].get_position(fig).x0,
                 row[0, 2 + show].get_position(fig).y1 + 0.012,
                 _row_title(case_base, second['cls'], second['k']), fontsize=10,
                 color='firebrick', weight='bold')
    if title:
        fig.suptitle(title, fontsize=13)
    fig.savefig(path, dpi=80, bbox_inches='tight')
    return path


BORDER_UNKNOWN = 'border: not known (case base made before border flags; snap again to get them)'


def class_k(case_base: dict, c: int) -> int:
    """K of class c: its used slots (K per class), or every slot of a case
    base made before it recorded them."""
    return int(used_slots(case_base)[c].sum())


def gallery_row_labels(case_base: dict, c: int, share: torch.Tensor) -> List[str]:
    """The title of each of class c's K gallery rows: k, its share of wins, and
    'border' where most of its shown pixels lie on the image's edge.

    Args:
        share (Tensor): (C, K) share of each class's pixels won.
    """
    flagged = case_base.get('border_flagged')
    labels = []
    for k in range(class_k(case_base, c)):
        label = f'k={k}\nwins {100 * float(share[c, k]):.0f}%' \
            if case_base.get('wins_known', True) else f'k={k}'
        if flagged is not None and bool(flagged[c, k]):
            label += '\nborder'
        labels.append(label)
    return labels


def class_gallery(case_base: dict, c: int, share: torch.Tensor, path: str,
                  show: int = 8) -> str:
    """Class c's sub-centroids, one row each, as their nearest training patches
    (from distinct images); a row titled 'border' is a sub-centroid at least
    half of whose shown pixels are feature cells on the image's edge."""
    k = class_k(case_base, c)
    show = min(show, case_base['score'].shape[0])
    fig = Figure(figsize=(1.6 * show + 2.4, 1.7 * k))
    axes = fig.subplots(k, show, squeeze=False)
    for row, label in enumerate(gallery_row_labels(case_base, c, share)):
        _patch_row(axes[row], case_base, c, row, show)
        axes[row, 0].set_ylabel(label, rotation=0, ha='right', va='center', fontsize=10,
                                color='firebrick' if 'border' in label else 'black')
    border = ("'border' (red): at least half of its pixels are on the image's edge"
              if 'border_flagged' in case_base else BORDER_UNKNOWN)
    fig.suptitle(f"{case_base['classes'][c]}: its {k} sub-centroids, each shown as its "
                 f'{show} nearest training pixels, one per image (cosine above each; '
                 "yellow: the pixel)\n'wins': share of the class's training pixels nearest "
                 f'to it; {border}', fontsize=10)
    fig.tight_layout(rect=(0.02, 0, 1, 0.95))
    fig.savefig(path, dpi=70)
    return path


def similarity_heatmap(sub_centroids: torch.Tensor, classes: Sequence[str], path: str,
                       active: Optional[torch.Tensor] = None) -> str:
    """Cosine between all sub-centroids, grouped by class; ``active`` (C, K)
    bool keeps each class's used slots (K per class)."""
    c, k, d = sub_centroids.shape
    active = torch.ones(c, k, dtype=torch.bool) if active is None else active.bool().cpu()
    flat = sub_centroids.float()[active]  # (sum of K_c, D), class by class
    sim = (flat @ flat.t()).numpy()
    sizes = active.sum(dim=1).tolist()
    starts = [sum(sizes[:i]) for i in range(c)]
    side = min(16, 4 + 0.12 * len(flat))
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.subplots()
    shown = ax.imshow(sim, cmap='RdBu_r', vmin=-1, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.04, label='cosine')
    for b in starts[1:]:
        ax.axhline(b - 0.5, color='black', lw=0.4)
        ax.axvline(b - 0.5, color='black', lw=0.4)
    if c <= 60:
        ticks = [start + (size - 1) / 2 for start, size in zip(starts, sizes)]
        ax.set_xticks(ticks, classes, rotation=90, fontsize=8)
        ax.set_yticks(ticks, classes, fontsize=8)
    what = f'{c}x{k}' if min(sizes) == max(sizes) else \
        f'{len(flat)} ({c} classes, K {min(sizes)}-{max(sizes)})'
    ax.set_title(f'similarity between all {what} sub-centroids (blocks: classes)')
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    return path
