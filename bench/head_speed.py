"""Time of the DNC classifier against mmseg's 1x1 conv (``cls_seg``), head only.

Both heads get the same decoder features (FCNHead with num_convs=0 passes its
input through, so the head is the classifier alone) and labels at 8x the
feature size, as mmseg trains: a training step is forward, mmseg's loss on
upsampled logits (plus PPC, PPD, Sinkhorn and the update for DNC) and backward
into the features; inference is the forward pass to logits.

    python bench/head_speed.py                       # ADE20K size: 150 classes
    python bench/head_speed.py --classes 19 --batch 8
"""
import argparse
import platform
import statistics
import time

import torch
from mmengine.structures import PixelData

import mmseg_dnc  # noqa: F401
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules


def build(dnc: bool, classes: int, channels: int, k: int):
    cfg = dict(type='FCNHead', in_channels=channels, channels=channels, num_convs=0,
               concat_input=False, num_classes=classes, dropout_ratio=0.1)
    if dnc:
        cfg.update(type='DNCDecodeHead', decoder='FCNHead', num_subcentroids=k)
    return MODELS.build(cfg).train()


def timed(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--classes', type=int, default=150)
    parser.add_argument('--k', type=int, default=10)
    parser.add_argument('--channels', type=int, default=512)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=64, help='feature map side')
    parser.add_argument('--repeats', type=int, default=10)
    args = parser.parse_args()
    register_all_modules()
    torch.manual_seed(0)
    b, s = args.batch, args.size
    feats = torch.randn(b, args.channels, s, s, requires_grad=True)
    samples = []
    for _ in range(b):
        sample = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, args.classes, (1, 8 * s, 8 * s))))
        sample.set_metainfo(dict(img_shape=(8 * s, 8 * s), pad_shape=(8 * s, 8 * s)))
        samples.append(sample)

    rows = []
    for name, dnc in (('1x1 conv (cls_seg)', False), (f'DNC, K={args.k}', True)):
        head = build(dnc, args.classes, args.channels, args.k)

        def train_step():
            losses = head.loss([feats], samples, None)
            sum(v for k, v in losses.items() if k.startswith('loss')).backward()
            head.zero_grad(set_to_none=True)
            feats.grad = None

        def infer():
            with torch.no_grad():
                head.eval()
                head([feats])
                head.train()

        rows.append((name, timed(train_step, args.repeats), timed(infer, args.repeats)))

    print(f'\nHead only: {args.classes} classes, {args.channels} channels, features '
          f'{b}x{s}x{s}, labels {8 * s}x{8 * s}; torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}')
    print(f'| head | train step (ms) | inference (ms) |\n|---|---:|---:|')
    for name, train_ms, infer_ms in rows:
        print(f'| {name} | {train_ms:.1f} | {infer_ms:.1f} |')
    (_, t0, i0), (_, t1, i1) = rows
    print(f'| ratio DNC / 1x1 conv | {t1 / t0:.2f}x | {i1 / i0:.2f}x |')


if __name__ == '__main__':
    main()
