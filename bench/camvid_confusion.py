"""Where a trained run's pixels of a class go: its confusion matrix on CamVid val.

For each run folder (bench/camvid_pretrained.py's; its config and last
checkpoint), the run's own head predicts val the way it is scored (logits
upsampled to 480x360, argmax); the (C, C) counts of labelled pixels (rows: the
label, columns: the prediction) go, one line per run, to
bench/results/camvid_confusion.jsonl, with the mIoU they give (which should be
the run's recorded one), and per class how many of its false positives lie
within 4 pixels of a pixel labelled as it (one cell of the head's stride-4
grid: a boundary error) or farther. The table then says, for each ``--classes`` class and
run: the share of its pixels predicted as itself (recall), how many pixels are
predicted as it against how many are labelled so, and which labels the wrong
ones carry: e.g. whether DNC's lower Bicyclist IoU is missed bicyclists or
road predicted as bicyclist.

    python bench/camvid_confusion.py RUN_DIR [RUN_DIR ...] [--classes Bicyclist Car]
        [--data-root DIR]
    python bench/camvid_confusion.py --table [--classes ...]
    python bench/camvid_confusion.py TWIN_RUN DNC_RUN --figure PNG --classes Bicyclist
"""
import argparse
import json
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from camvid_accuracy import ROOT, head_commit  # noqa: E402
from camvid_probe import append_record, camvid_split, features_and_logits, load_run  # noqa: E402

from mmseg_dnc.demo import find_camvid  # noqa: E402

RESULTS = osp.join(ROOT, 'bench', 'results', 'camvid_confusion.jsonl')
NEAR = 4  # pixels at 480x360: one cell of the head's stride-4 grid


def counts_of(label: torch.Tensor, pred: torch.Tensor, c: int) -> torch.Tensor:
    """(H, W) labels and predictions -> (C * C,) confusion counts of the labelled
    pixels (label < C), row-major: label * C + prediction."""
    keep = label < c
    return torch.bincount(label[keep] * c + pred[keep], minlength=c * c)


def stray(label: torch.Tensor, pred: torch.Tensor, i: int, c: int, near: int = NEAR):
    """(H, W) bool masks of class ``i``'s false positives (predicted ``i``, labelled
    another class, not ignored) within ``near`` pixels (a square) of a pixel
    labelled ``i``, and farther."""
    wrong = (pred == i) & (label < c) & (label != i)
    close = F.max_pool2d((label == i)[None, None].float(), 2 * near + 1, stride=1,
                         padding=near)[0, 0] > 0
    return wrong & close, wrong & ~close


def confusion(run_dir: str, data_root: str, near: int = NEAR) -> dict:
    """The run's (C, C) val confusion counts (rows: label, columns: prediction), and
    per class its false positives near a pixel labelled as it and farther (``stray``)."""
    cfg, model, checkpoint = load_run(run_dir, data_root,
                                      osp.join(ROOT, 'work_dirs', 'camvid_confusion'))
    c = model.decode_head.num_classes
    counts = torch.zeros(c * c, dtype=torch.int64)
    fp_near, fp_far = torch.zeros(c, dtype=torch.int64), torch.zeros(c, dtype=torch.int64)
    for _, logits, label in features_and_logits(model, camvid_split(cfg, 'val')):
        pred = logits[0].argmax(0)
        counts += counts_of(label, pred, c)
        for i in range(c):
            close, far = stray(label, pred, i, c, near)
            fp_near[i] += close.sum()
            fp_far[i] += far.sum()
    counts = counts.view(c, c)
    return dict(run=osp.basename(osp.normpath(run_dir)), checkpoint=osp.basename(checkpoint),
                head_type=type(model.decode_head).__name__, commit=head_commit(),
                classes=list(model.dataset_meta['classes']), mIoU=round(miou(counts), 2),
                confusion=counts.tolist(), near=near, false_positives_near=fp_near.tolist(),
                false_positives_far=fp_far.tolist())


def ious(counts: torch.Tensor) -> torch.Tensor:
    """(C,) IoU (%) of each class of a (C, C) confusion matrix."""
    counts = counts.double()
    inter = counts.diag()
    return 100 * inter / (counts.sum(0) + counts.sum(1) - inter)


def miou(counts: torch.Tensor) -> float:
    """Mean IoU (%) of a (C, C) confusion matrix."""
    return float(ious(counts).mean())


def close_share(record: dict, i: int) -> str:
    """The share (%) of class ``i``'s false positives near a pixel labelled ``i``."""
    if 'false_positives_near' not in record:
        return ''
    close, far = record['false_positives_near'][i], record['false_positives_far'][i]
    return f'{100 * close / max(close + far, 1):.1f}'


def table(records: list, classes: list, top: int = 2) -> str:
    """Per run and class: recall, predicted pixels against labelled ones, and the
    labels of the pixels wrongly predicted as the class (their share of its
    predictions), most first."""
    lines = ['| run | head | mIoU | class | recall (%) | predicted / labelled | '
             'wrongly predicted as it, from (% of its predictions) | of those, within '
             f'{NEAR} px of it (%) |', '|---|---|---:|---|---:|---:|---|---:|']
    for r in records:
        counts = torch.tensor(r['confusion'], dtype=torch.float64)
        for name in classes:
            i = r['classes'].index(name)
            column = counts[:, i].clone()
            predicted = column.sum()
            column[i] = -1
            sources = ', '.join(f"{r['classes'][j]} {100 * column[j] / predicted:.1f}"
                                for j in column.argsort(descending=True)[:top].tolist())
            lines.append(f"| {r['run']} | {r['head_type']} | {r['mIoU']:.2f} | {name} | "
                         f"{100 * counts[i, i] / counts[i].sum():.1f} | "
                         f"{predicted / counts[i].sum():.2f} | {sources} | {close_share(r, i)} |")
    return '\n'.join(lines)


def stray_figure(twin_dir: str, dnc_dir: str, data_root: str, name: str, path: str) -> str:
    """The val frame where DNC's far false positives of class ``name`` most
    outnumber the twin's: the frame, its labels and each head's prediction, the
    class's false positives far from it outlined in white."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from mmseg_dnc.visualization.colors import boundaries, colorize
    runs = [load_run(d, data_root, osp.join(ROOT, 'work_dirs', 'camvid_confusion'))
            for d in (twin_dir, dnc_dir)]
    cfg, model = runs[0][0], runs[0][1]
    c, i = model.decode_head.num_classes, list(model.dataset_meta['classes']).index(name)
    dataset = camvid_split(cfg, 'val')
    best = None  # (extra far false positives, index, far masks, predictions, label)
    for n, (twin_out, dnc_out) in enumerate(zip(*(features_and_logits(m, dataset)
                                                  for _, m, _ in runs))):
        label = twin_out[2]
        preds = [out[1][0].argmax(0) for out in (twin_out, dnc_out)]
        far = [stray(label, p, i, c)[1] for p in preds]
        extra = int(far[1].sum() - far[0].sum())
        if best is None or extra > best[0]:
            best = (extra, n, far, preds, label)
    extra, n, far, preds, label = best
    palette = model.dataset_meta['palette']
    image = dataset[n]['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # BGR -> RGB
    panels = [image, colorize(label.numpy(), palette)]
    for mask, pred in zip(far, preds):
        picture = colorize(pred.numpy(), palette)
        picture[boundaries(mask.numpy().astype(np.uint8))] = 255
        panels.append(picture)
    titles = ['val frame ' + osp.basename(dataset[n]['data_samples'].img_path), 'labels'] + [
        f"{head}: {name} far false positives {int(m.sum())} px" for head, m in
        zip(('1x1 conv (twin)', 'DNC'), far)]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for ax, picture, title in zip(axes, panels, titles):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.axis('off')
    fig.suptitle(f'{name} predicted more than {NEAR} px from any pixel labelled {name}, '
                 f'outlined white ({osp.basename(osp.normpath(twin_dir))}, '
                 f'{osp.basename(osp.normpath(dnc_dir))})', fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return f'wrote {path} (frame {n}, {extra} more far false positives for DNC)'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='*')
    parser.add_argument('--classes', nargs='+', default=['Pole', 'Pedestrian', 'Bicyclist'])
    parser.add_argument('--data-root')
    parser.add_argument('--table', action='store_true', help='print the recorded table only')
    parser.add_argument('--figure', metavar='PNG',
                        help="with two runs, the twin's and DNC's: draw the val frame where DNC's "
                        "far false positives of the first --classes class (default: Pole) most "
                        "outnumber the twin's")
    args = parser.parse_args()
    if args.figure:
        if len(args.runs) != 2:
            parser.error('--figure takes two runs: the twin\'s, then DNC\'s')
        print(stray_figure(*args.runs, find_camvid(args.data_root, ROOT), args.classes[0],
                           args.figure))
        return
    if not args.runs and not args.table:
        parser.error('give run folders, or --table')
    if args.runs:
        data_root = find_camvid(args.data_root, ROOT)
        for run in args.runs:
            record = confusion(run, data_root)
            append_record(RESULTS, record)
            print(f"{record['run']}: mIoU {record['mIoU']:.2f}", flush=True)
    with open(RESULTS) as f:
        records = [json.loads(line) for line in f if line.strip()]
    wanted = {osp.basename(osp.normpath(r)) for r in args.runs}
    print(table([r for r in records if not wanted or r['run'] in wanted], args.classes))


if __name__ == '__main__':
    main()
