"""Pictures of what a DNC model predicts and which sub-centroid decided it.

Shape legend: C classes, K sub-centroids per class, H, W image size.
"""
from typing import List, Sequence, Union

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from mmseg_dnc.models import DNCDecodeHead
from .colors import boundaries, colorize, subcentroid_colors
from .geometry import to_original_size, unpadded_feature_size


@torch.no_grad()
def predict_with_subcentroids(model, data: dict) -> List[dict]:
    """Run a DNC segmentor on one batch from an mmseg test dataloader.

    Args:
        model: an mmseg ``EncoderDecoder`` whose decode head is a DNC head.
        data (dict): ``inputs`` and ``data_samples`` as the dataloader gives them.

    Returns:
        list[dict]: per image, ``image`` (H, W, 3) uint8 RGB, ``gt`` (H, W),
        ``pred`` (H, W) and ``subcentroid`` (H, W): the index of the nearest
        sub-centroid of the predicted class, all at the original image size.
    """
    head = model.decode_head
    if not isinstance(head, DNCDecodeHead):
        raise TypeError(f'{type(head).__name__} is not a DNC head: no sub-centroids to show.')
    model.eval()
    batch = model.data_preprocessor(data, False)
    logits, nearest = head.predict_subcentroids(model.extract_feat(batch['inputs']))
    results = []
    for i, sample in enumerate(batch['data_samples']):
        fh, fw = unpadded_feature_size(sample.img_shape, batch['inputs'].shape[2:],
                                       logits.shape[2:])
        out = to_original_size(logits[i, :, :fh, :fw], nearest[i, :, :fh, :fw],
                               data['inputs'][i], sample.ori_shape, head.align_corners)
        out.pop('prob')
        out['gt'] = sample.gt_sem_seg.data[0].cpu().numpy() if 'gt_sem_seg' in sample else None
        results.append(out)
    return results


def save_prediction_panel(results: List[dict], classes: Sequence[str], palette: Sequence,
                          num_subcentroids: Union[int, Sequence[int]], path: str,
                          titles: Sequence[str] = ()):
    """One row per image: image | ground truth | prediction | nearest sub-centroid.

    The last column colours each pixel by which of its predicted class's K
    sub-centroids is nearest (one colour per index k, the same for every
    class), with the predicted class boundaries in black. ``num_subcentroids``
    is K, or one K per class.
    """
    ks = [num_subcentroids] if isinstance(num_subcentroids, int) else list(num_subcentroids)
    k_range = f'{max(ks)}' if min(ks) == max(ks) else f'{min(ks)}-{max(ks)}'
    num_subcentroids = max(ks)
    k_colors = subcentroid_colors(num_subcentroids)
    rows = len(results)
    fig = Figure(figsize=(16, 3.2 * rows + 1.2))
    axes = fig.subplots(rows, 4, squeeze=False)
    heads = ['image', 'ground truth', 'DNC prediction',
             f'nearest sub-centroid (of {k_range} per class)']
    for r, res in enumerate(results):
        sub = k_colors[res['subcentroid'] % len(k_colors)]
        sub[boundaries(res['pred'])] = 0
        gt = colorize(res['gt'], palette) if res['gt'] is not None else \
            np.zeros_like(res['image'])
        for c, picture in enumerate([res['image'], gt, colorize(res['pred'], palette), sub]):
            ax = axes[r, c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heads[c], fontsize=12)
        if r < len(titles):
            axes[r, 0].set_ylabel(titles[r], fontsize=9)
    present = sorted({int(v) for res in results for v in np.unique(res['pred'])})
    class_legend = [Patch(color=np.asarray(palette[c]) / 255, label=classes[c]) for c in present]
    k_legend = [Patch(color=k_colors[k % len(k_colors)] / 255, label=f'k={k}')
                for k in range(num_subcentroids)]
    fig.legend(handles=class_legend, loc='lower left', ncol=min(6, len(class_legend)),
               fontsize=9, title='classes (black: unlabelled)', bbox_to_anchor=(0.02, 0.0))
    fig.legend(handles=k_legend, loc='lower right', ncol=5, fontsize=9,
               title='nearest sub-centroid k; black lines: class boundaries',
               bbox_to_anchor=(0.98, 0.0))
    fig.tight_layout(rect=(0, 1.1 / (3.2 * rows + 1.2), 1, 1))
    fig.savefig(path, dpi=80)
    return path
