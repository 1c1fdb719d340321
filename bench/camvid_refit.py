"""Do DNC's sub-centroids lag its features? Refit them to the final network.

For a trained DNC run, the embeddings of labelled CamVid train pixels (no
augmentation, full 480x360, ``--pixels-per-image`` a frame, as
bench/camvid_probe.py samples them) are computed once; then each class's K
sub-centroids are refitted by Lloyd steps (each pixel to the nearest of its
class's K, then the normalised mean), everything else of the head kept (the
LayerNorm over class scores included), and val is scored with the head's own
logits after each step. Prints how far the sub-centroids moved (cosine to the
trained ones) and val mIoU; writes nothing.

    python bench/camvid_refit.py RUN_DIR [--steps 2] [--pixels-per-image 3000]
        [--data-root DIR]
"""
import argparse
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from camvid_accuracy import ROOT  # noqa: E402
from camvid_probe import (IoU, camvid_split, features_and_logits,  # noqa: E402
                          load_run, train_pixels)

import mmseg_dnc  # noqa: E402,F401
from mmseg_dnc.demo import find_camvid  # noqa: E402


def lloyd_step(sub_centroids, embeddings, labels):
    """(C, K, D) unit sub-centroids -> each moved to the normalised mean of its
    class's embeddings nearest to it (unchanged when none is)."""
    new = sub_centroids.clone()
    for c in range(sub_centroids.shape[0]):
        own = embeddings[labels == c]
        if not len(own):
            continue
        nearest = (own @ sub_centroids[c].t()).argmax(1)
        for k in range(sub_centroids.shape[1]):
            if (nearest == k).any():
                new[c, k] = F.normalize(own[nearest == k].mean(0), dim=0)
    return new


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run')
    parser.add_argument('--steps', type=int, default=2)
    parser.add_argument('--pixels-per-image', type=int, default=3000)
    parser.add_argument('--data-root')
    args = parser.parse_args()
    cfg, model, _ = load_run(args.run, find_camvid(args.data_root, ROOT),
                             osp.join(ROOT, 'work_dirs', 'camvid_refit'))
    head = model.decode_head
    if not hasattr(head, 'sub_centroids'):
        raise SystemExit(f'{args.run}: not a DNC run (its head has no sub-centroids)')
    c = head.num_classes

    def val_miou():
        iou = IoU(c)
        for _, logits, label in features_and_logits(model, camvid_split(cfg, 'val')):
            iou.add(logits[0].argmax(0), label)
        return sum(iou.per_class()) / c

    x, y = train_pixels(model, cfg, args.pixels_per_image, seed=0)
    with torch.no_grad():  # the head's own embedding of each (1x1) pixel
        embeddings = head.embed(x[:, :, None, None])[:, :, 0, 0]
    trained = head.sub_centroids.clone()
    print(f'{osp.basename(osp.normpath(args.run))}: trained sub-centroids, val mIoU '
          f'{val_miou():.2f}', flush=True)
    sub = trained
    with torch.no_grad():
        for step in range(1, args.steps + 1):
            sub = lloyd_step(sub, embeddings, y)
            head.sub_centroids.copy_(sub)
            print(f'Lloyd step {step}: mean cosine to the trained sub-centroids '
                  f'{(sub * trained).sum(-1).mean():.3f}, val mIoU {val_miou():.2f}', flush=True)


if __name__ == '__main__':
    main()
