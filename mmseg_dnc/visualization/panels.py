"""Pictures of what a DNC model predicts and which sub-centroid decided it.

Shape legend: C classes, K sub-centroids per class, H, W image size.
"""
from typing import List, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from mmseg_dnc.models import DNCDecodeHead  # noqa: E402


def unpadded_feature_size(img_shape, input_hw, feature_hw) -> Tuple[int, int]:
    """The feature cells that cover the image itself, not the batch padding.

    Args:
        img_shape: (h, w) of the resized image inside the padded input.
        input_hw: (H', W') of the padded network input.
        feature_hw: (h', w') of the feature map.
    """
    return (max(1, round(img_shape[0] * feature_hw[0] / input_hw[0])),
            max(1, round(img_shape[1] * feature_hw[1] / input_hw[1])))


def to_original_size(logits: Tensor, nearest: Tensor, image: Tensor, ori_shape,
                     align_corners: bool) -> dict:
    """One image's outputs, cropped to the image, at its original size.

    Args:
        logits (Tensor): (C, h, w) class logits of the unpadded image.
        nearest (Tensor): (C, h, w) nearest sub-centroid of each class.
        image (Tensor): (3, h'', w'') BGR uint8 network input (before padding).
        ori_shape: (H, W).

    Returns:
        dict of numpy arrays: ``image`` (H, W, 3) RGB uint8, ``prob`` (C, H, W)
        softmax, ``pred`` (H, W), ``subcentroid`` (H, W) nearest sub-centroid
        of the predicted class.
    """
    size = tuple(ori_shape)
    prob = F.interpolate(logits[None], size=size, mode='bilinear',
                         align_corners=align_corners)[0].softmax(dim=0)
    pred = prob.argmax(dim=0)
    near = F.interpolate(nearest[None].float(), size=size, mode='nearest').long()[0]
    rgb = F.interpolate(image[None].float(), size=size, mode='bilinear')[0].flip(0)
    return dict(image=rgb.permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy(),
                prob=prob.cpu().numpy(), pred=pred.cpu().numpy(),
                subcentroid=near.gather(0, pred[None])[0].cpu().numpy())


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


def _colorize(labels: np.ndarray, palette: Sequence, ignore: int = 255) -> np.ndarray:
    colors = np.zeros((256, 3), np.uint8)
    colors[:len(palette)] = np.asarray(palette, np.uint8)
    out = colors[np.clip(labels, 0, 255)]
    out[labels == ignore] = 0
    return out


def _boundaries(labels: np.ndarray) -> np.ndarray:
    edge = np.zeros(labels.shape, bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    return edge


def save_prediction_panel(results: List[dict], classes: Sequence[str], palette: Sequence,
                          num_subcentroids: int, path: str, titles: Sequence[str] = ()):
    """One row per image: image | ground truth | prediction | nearest sub-centroid.

    The last column colours each pixel by which of its predicted class's K
    sub-centroids is nearest (one colour per index k, the same for every
    class), with the predicted class boundaries in black.
    """
    k_colors = (plt.get_cmap('tab10' if num_subcentroids <= 10 else 'tab20')(
        np.arange(num_subcentroids))[:, :3] * 255).astype(np.uint8)
    rows = len(results)
    fig, axes = plt.subplots(rows, 4, figsize=(16, 3.2 * rows + 1.2), squeeze=False)
    heads = ['image', 'ground truth', 'DNC prediction',
             f'nearest sub-centroid (of {num_subcentroids} per class)']
    for r, res in enumerate(results):
        sub = k_colors[res['subcentroid'] % num_subcentroids]
        sub[_boundaries(res['pred'])] = 0
        gt = _colorize(res['gt'], palette) if res['gt'] is not None else \
            np.zeros_like(res['image'])
        for c, picture in enumerate([res['image'], gt, _colorize(res['pred'], palette), sub]):
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
    k_legend = [Patch(color=k_colors[k] / 255, label=f'k={k}') for k in range(num_subcentroids)]
    fig.legend(handles=class_legend, loc='lower left', ncol=min(6, len(class_legend)),
               fontsize=9, title='classes (black: unlabelled)', bbox_to_anchor=(0.02, 0.0))
    fig.legend(handles=k_legend, loc='lower right', ncol=5, fontsize=9,
               title='nearest sub-centroid k; black lines: class boundaries',
               bbox_to_anchor=(0.98, 0.0))
    fig.tight_layout(rect=(0, 1.1 / (3.2 * rows + 1.2), 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
