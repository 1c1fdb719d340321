"""Which of a class's sub-centroids make its false positives? A trained DNC
run's val predictions of one class, split by the sub-centroid that decided them.

For a DNC run folder (bench/camvid_pretrained.py's), each val image is
classified once; every pixel predicted as ``--class`` (logits upsampled to
480x360, argmax, as the run is scored) is credited to the class's sub-centroid
nearest to it (at the head's stride-4 cell). Per sub-centroid: the pixels it
won that are labelled the class (true positives), labelled another class within
4 pixels of the class (near: boundary errors) or farther (far: beyond its
boundary); then val mIoU and the class's IoU with that one sub-centroid left
out of the max over K (the class scored by its other K-1); and the class's scale
and bias in the LayerNorm over class scores. A diagnosis on val, not a setting:
nothing here changes a model.

    python bench/camvid_subcentroid_errors.py RUN_DIR [--class Bicyclist] [--data-root DIR]
"""
import argparse
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from camvid_accuracy import ROOT  # noqa: E402
from camvid_confusion import NEAR, counts_of, ious, miou, stray  # noqa: E402
from camvid_probe import camvid_split, features_and_logits, load_run  # noqa: E402

from mmseg_dnc.demo import find_camvid  # noqa: E402
from mmseg_dnc.models import dnc_core  # noqa: E402


def logits_without(head, sub_scores: torch.Tensor, cls: int, left_out) -> torch.Tensor:
    """(1, C, h, w) logits with sub-centroid ``left_out`` of class ``cls`` out of
    its max over K (None: all in), by the head's own ``logits_from_scores``."""
    c, k = head.sub_centroids.shape[:2]
    active = (head.slot_mask.clone() if head.slot_mask is not None
              else torch.ones(c, k, dtype=torch.bool))
    if left_out is not None:
        active[cls, left_out] = False
    return head.logits_from_scores(sub_scores, active=active)


@torch.no_grad()
def diagnose(run_dir: str, data_root: str, cls_name: str) -> str:
    cfg, model, _ = load_run(run_dir, data_root,
                             osp.join(ROOT, 'work_dirs', 'camvid_subcentroid_errors'))
    head = model.decode_head
    classes = list(model.dataset_meta['classes'])
    i, (c, k) = classes.index(cls_name), head.sub_centroids.shape[:2]
    won = torch.zeros(k, 3, dtype=torch.int64)  # true positive, near, far
    counts = torch.zeros(k + 1, c * c, dtype=torch.int64)  # confusion with k left out; k: none
    with head.classified() as calls:  # the forward's own cls_seg records its scores
        for _, _, label in features_and_logits(model, camvid_split(cfg, 'val')):
            (classified,) = calls
            calls.clear()
            sub_scores = classified.sub_scores
            nearest = dnc_core.nearest_subcentroid(sub_scores, c, head.slot_mask)[:, i:i + 1]
            nearest = F.interpolate(nearest.float(), size=label.shape,
                                    mode='nearest')[0, 0].long()
            for j, left_out in enumerate(list(range(k)) + [None]):
                logits = F.interpolate(logits_without(head, sub_scores, i, left_out),
                                       size=label.shape, mode='bilinear',
                                       align_corners=head.align_corners)
                pred = logits[0].argmax(0)
                counts[j] += counts_of(label, pred, c)
                if left_out is None:
                    right = (pred == i) & (label == i)
                    for kind, where in enumerate((right, *stray(label, pred, i, c))):
                        won[:, kind] += torch.bincount(nearest[where], minlength=k)
    full = counts[k].view(c, c)
    norm = head.score_norm
    lines = [f'{osp.basename(osp.normpath(run_dir))}: {cls_name}, val mIoU {miou(full):.2f}, '
             f'{cls_name} IoU {ious(full)[i]:.2f}'
             + (f'; class-score LayerNorm scale {norm.weight[i]:.2f} (others '
                f'{min(w for n, w in enumerate(norm.weight.tolist()) if n != i):.2f}-'
                f'{max(w for n, w in enumerate(norm.weight.tolist()) if n != i):.2f}), '
                f'bias {norm.bias[i]:+.2f}' if norm is not None else ''), '',
             f'| sub-centroid | predictions it decided | true (%) | wrong, within {NEAR} px (%) '
             f'| wrong, farther (%) | val mIoU without it | {cls_name} IoU without it |',
             '|---:|---:|---:|---:|---:|---:|---:|']
    for j in range(k):
        total = int(won[j].sum())
        shares = [f'{100 * x / max(total, 1):.1f}' for x in won[j].tolist()]
        m = counts[j].view(c, c)
        lines.append(f'| {j} | {total} | ' + ' | '.join(shares)
                     + f' | {miou(m):.2f} | {ious(m)[i]:.2f} |')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run')
    parser.add_argument('--class', dest='cls', default='Bicyclist')
    parser.add_argument('--data-root')
    args = parser.parse_args()
    print(diagnose(args.run, find_camvid(args.data_root, ROOT), args.cls))


if __name__ == '__main__':
    main()
