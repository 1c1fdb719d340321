"""Features or classifier: what holds a trained run back, by a linear probe.

For each trained run (twin or DNC), the decoder's features at the classifier's
input (``cls_seg``'s ``feat``: (B, 128, h, w) at stride 4, frozen, eval mode)
are computed on CamVid train (no augmentation, full 480x360) and val. A linear
probe (a 1x1 conv with bias, the twin's classifier) is fitted to the train
features of labelled pixels with the configs' class-weighted cross-entropy
(full-batch L-BFGS, deterministic), then scored on val the way the head is
(logits upsampled to 480x360, mIoU over the 11 classes). Beside it, the run's
own head scored by the same code.

- DNC's head behind a probe on DNC's own features: the nearest-sub-centroid
  classifier loses accuracy the features hold.
- A probe on DNC's features behind one on the twin's: DNC's training left
  worse features.

    python bench/camvid_probe.py RUN_DIR [RUN_DIR ...] [--pixels-per-image N]
        [--data-root DIR]

RUN_DIR: a bench/camvid_pretrained.py run folder (its config and
iter_*.pth); one line per run goes to bench/results/camvid_probe.jsonl.
"""
import argparse
import json
import os
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from camvid_accuracy import ROOT, head_commit  # noqa: E402
from camvid_fit import run_files  # noqa: E402

import mmseg_dnc  # noqa: E402,F401
from mmseg.apis import init_model  # noqa: E402
from mmseg.registry import DATASETS  # noqa: E402
from mmseg_dnc.demo import find_camvid  # noqa: E402
from mmseg_dnc.engine import prepare_config  # noqa: E402

RESULTS = osp.join(ROOT, 'bench', 'results', 'camvid_probe.jsonl')


@torch.no_grad()
def features_and_logits(model, dataset):
    """Yields, per image: (1, 128, h, w) classifier input, (1, C, H, W) the
    head's own logits at label size, and (H, W) int64 labels."""
    head = model.decode_head
    seen = []
    own = head.cls_seg

    def listening(feat):
        seen.append(feat)
        return own(feat)
    head.cls_seg = listening
    try:
        for i in range(len(dataset)):
            data = model.data_preprocessor(
                dict(inputs=[dataset[i]['inputs']], data_samples=[dataset[i]['data_samples']]))
            seen.clear()
            logits = head.forward(model.extract_feat(data['inputs']))
            label = data['data_samples'][0].gt_sem_seg.data[0].long()
            logits = F.interpolate(logits, size=label.shape, mode='bilinear',
                                   align_corners=head.align_corners)
            yield seen[0], logits, label
    finally:
        del head.cls_seg


def sample_pixels(feat, label, num_classes, count, generator):
    """(count, D) features and (count,) labels of random labelled pixels
    (labels taken at the feature grid, nearest)."""
    d, h, w = feat.shape[1:]
    small = F.interpolate(label[None, None].float(), size=(h, w), mode='nearest').long().view(-1)
    pixels = feat[0].reshape(d, -1).t()
    index = (small < num_classes).nonzero().squeeze(1)
    pick = index[torch.randperm(index.numel(), generator=generator)[:count]]
    return pixels[pick], small[pick]


def fit_probe(x, y, num_classes, class_weight, steps=60, weight_decay=1e-4):
    """A (C, D) weight and (C,) bias minimising the class-weighted
    cross-entropy (PyTorch's weighted mean) plus ``weight_decay`` |W|^2."""
    weight = torch.zeros(num_classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps,
                                  history_size=20, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.t() + bias, y, weight=class_weight) \
            + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss
    optimizer.step(closure)
    return weight.detach(), bias.detach()


class IoU:
    def __init__(self, num_classes):
        self.c = num_classes
        self.intersect = torch.zeros(num_classes, dtype=torch.float64)
        self.union = torch.zeros(num_classes, dtype=torch.float64)

    def add(self, pred, label):
        keep = label < self.c
        pred, label = pred[keep], label[keep]
        inter = torch.bincount(label[pred == label], minlength=self.c).double()
        area_p = torch.bincount(pred, minlength=self.c).double()
        area_l = torch.bincount(label, minlength=self.c).double()
        self.intersect += inter
        self.union += area_p + area_l - inter

    def per_class(self):
        return (100 * self.intersect / self.union).tolist()


def load_run(run_dir: str, data_root: str, work_dir: str):
    """A bench run folder's config (data at ``data_root``) and its last
    checkpoint's model, in eval mode on the CPU."""
    config, checkpoint = run_files(run_dir)
    cfg = prepare_config(config, data_root=data_root, work_dir=work_dir)
    model = init_model(cfg, checkpoint, device='cpu')
    model.eval()
    return cfg, model, checkpoint


def camvid_split(cfg, split: str):
    """CamVid ``split`` ('train', 'val') through the run's test pipeline (bench
    runs drop test_dataloader, so it is val_dataloader's)."""
    ds = dict(cfg.val_dataloader.dataset)
    ds['data_prefix'] = dict(img_path=split, seg_map_path=split + 'annot')
    return DATASETS.build(ds)


def train_pixels(model, cfg, pixels_per_image: int, seed: int):
    """(M, 128) classifier inputs and (M,) labels of labelled CamVid train
    pixels, ``pixels_per_image`` drawn from each frame."""
    c = model.decode_head.num_classes
    generator = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for feat, _, label in features_and_logits(model, camvid_split(cfg, 'train')):
        x, y = sample_pixels(feat, label, c, pixels_per_image, generator)
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def probe(run_dir: str, data_root: str, pixels_per_image: int, seed: int) -> dict:
    cfg, model, checkpoint = load_run(run_dir, data_root,
                                      osp.join(ROOT, 'work_dirs', 'camvid_probe'))
    classes = model.dataset_meta['classes'] if model.dataset_meta else None
    c = model.decode_head.num_classes
    class_weight = torch.tensor(cfg.model.decode_head.loss_decode.class_weight)
    x, y = train_pixels(model, cfg, pixels_per_image, seed)
    weight, bias = fit_probe(x, y, c, class_weight)
    head_iou, probe_iou = IoU(c), IoU(c)
    for feat, logits, label in features_and_logits(model, camvid_split(cfg, 'val')):
        head_iou.add(logits[0].argmax(0), label)
        probe_logits = F.conv2d(feat, weight[..., None, None], bias)
        probe_logits = F.interpolate(probe_logits, size=label.shape, mode='bilinear',
                                     align_corners=model.decode_head.align_corners)
        probe_iou.add(probe_logits[0].argmax(0), label)
    head, lin = head_iou.per_class(), probe_iou.per_class()
    commit = head_commit()
    return dict(run=osp.basename(osp.normpath(run_dir)), checkpoint=osp.basename(checkpoint),
                head_type=type(model.decode_head).__name__, train_pixels=int(y.numel()),
                seed=seed, commit=commit,
                head_mIoU=round(sum(head) / c, 2), probe_mIoU=round(sum(lin) / c, 2),
                head_IoU={n: round(v, 2) for n, v in zip(classes or range(c), head)},
                probe_IoU={n: round(v, 2) for n, v in zip(classes or range(c), lin)})


def runs_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the tools that score trained run folders."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('runs', nargs='+')
    parser.add_argument('--pixels-per-image', type=int, default=3000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--data-root')
    return parser


def append_record(path: str, record: dict) -> None:
    """One JSON line at the end of the results file ``path``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'a') as f:
        f.write(json.dumps(record) + '\n')


def main():
    args = runs_parser(__doc__.splitlines()[0]).parse_args()
    torch.manual_seed(args.seed)
    data_root = find_camvid(args.data_root, ROOT)
    lines = []
    for run in args.runs:
        record = probe(run, data_root, args.pixels_per_image, args.seed)
        append_record(RESULTS, record)
        lines.append(f"| {record['run']} | {record['head_type']} | {record['head_mIoU']:.2f} | "
                     f"{record['probe_mIoU']:.2f} |")
        print(lines[-1], flush=True)
    print('| run | head | val mIoU, its own head | val mIoU, linear probe on its features |\n'
          '|---|---|---:|---:|\n' + '\n'.join(lines))


if __name__ == '__main__':
    main()
