"""Which part of DNC's classifier costs accuracy? Four classifiers on one
trained DNC run's frozen features.

bench/camvid_probe.py found that at the configs' recipe a linear probe on
DNC's decoder features scores about as well as one on the twin's, while DNC's
own head scores 2-2.6 below its probe. This splits that gap. On the run's
decoder features (``cls_seg``'s input, eval mode, CamVid train without
augmentation, ``--pixels-per-image`` labelled pixels a frame, as the probe
samples them), each classifier is fitted (or kept) and scored on val the way
the head is (logits upsampled to 480x360, mIoU over the 11 classes):

- ``head``: the run's own head, as trained;
- ``head, LayerNorm affine refitted``: the trained sub-centroids kept, the 2C
  numbers of the LayerNorm over class scores refitted to the train pixels
  (the configs' class-weighted cross-entropy, L-BFGS from the trained
  values): whether the classifier's only learned part is under-trained;
- ``linear probe on the embeddings``: a 1x1 conv with bias on the unit
  embeddings (LayerNorm over D, L2 normalisation): what the sphere DNC
  classifies on still separates;
- ``linear probe on the features``: camvid_probe's probe (the twin's
  classifier, fitted).

One line per run goes to bench/results/camvid_classifier.jsonl.

    python bench/camvid_classifier.py RUN_DIR [RUN_DIR ...] [--pixels-per-image N]
        [--data-root DIR]
"""
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from camvid_accuracy import ROOT, head_commit  # noqa: E402
from camvid_probe import (IoU, append_record, camvid_split,  # noqa: E402
                          features_and_logits, fit_probe, load_run, runs_parser,
                          train_pixels)

import mmseg_dnc  # noqa: E402,F401
from mmseg_dnc.demo import find_camvid  # noqa: E402

RESULTS = osp.join(ROOT, 'bench', 'results', 'camvid_classifier.jsonl')
CLASSIFIERS = ('head', 'head, LayerNorm affine refitted', 'linear probe on the embeddings',
               'linear probe on the features')


def normalised_class_scores(embeddings, sub_centroids, slot_mask=None, eps=1e-5):
    """(M, D) unit embeddings, (C, K, D) sub-centroids -> (M, C) class scores
    (the best of each class's K cosines) after a LayerNorm over C without
    its affine: what the head's affine multiplies and shifts."""
    c, k, d = sub_centroids.shape
    scores = (embeddings @ sub_centroids.reshape(c * k, d).t()).view(-1, c, k)
    if slot_mask is not None:
        scores = scores.masked_fill(~slot_mask, -2.0)
    return F.layer_norm(scores.amax(-1), (c,), eps=eps)


def fit_affine(z, y, weight, bias, class_weight=None, steps=60):
    """Per-class scale and shift of (M, C) normalised scores ``z`` minimising
    the (class-weighted) cross-entropy of ``z * scale + shift`` against
    ``y``, by L-BFGS from ``weight``, ``bias`` (C,). Returns the fitted pair."""
    scale = weight.detach().clone().requires_grad_(True)
    shift = bias.detach().clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([scale, shift], lr=1.0, max_iter=steps, history_size=20,
                                  line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z * scale + shift, y, weight=class_weight)
        loss.backward()
        return loss
    optimizer.step(closure)
    return scale.detach(), shift.detach()


@torch.no_grad()
def _upsampled(logits, label, head):
    return F.interpolate(logits, size=label.shape, mode='bilinear',
                         align_corners=head.align_corners)[0].argmax(0)


def split_classifier(run_dir: str, data_root: str, pixels_per_image: int, seed: int) -> dict:
    cfg, model, checkpoint = load_run(run_dir, data_root,
                                      osp.join(ROOT, 'work_dirs', 'camvid_classifier'))
    head = model.decode_head
    if not hasattr(head, 'sub_centroids') or head.score_norm is None or \
            head.projection is not None:
        raise SystemExit(f'{run_dir}: needs a DNC run with the LayerNorm over class scores '
                         'and no projection (the head this splits).')
    c = head.num_classes
    class_weight = torch.tensor(cfg.model.decode_head.loss_decode.class_weight)
    x, y = train_pixels(model, cfg, pixels_per_image, seed)
    with torch.no_grad():
        e = head.embed(x[:, :, None, None])[:, :, 0, 0]
        z = normalised_class_scores(e, head.sub_centroids, head.slot_mask, head.score_norm.eps)
    scale, shift = fit_affine(z, y, head.score_norm.weight, head.score_norm.bias, class_weight)
    probe_e = fit_probe(e, y, c, class_weight)
    probe_x = fit_probe(x, y, c, class_weight)

    ious = {name: IoU(c) for name in CLASSIFIERS}
    for feat, logits, label in features_and_logits(model, camvid_split(cfg, 'val')):
        ious['head'].add(logits[0].argmax(0), label)
        with torch.no_grad():
            emb = head.embed(feat)
            flat = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
            zz = normalised_class_scores(flat, head.sub_centroids, head.slot_mask,
                                         head.score_norm.eps)
            b, _, h, w = feat.shape
            refit = (zz * scale + shift).view(b, h, w, c).permute(0, 3, 1, 2)
            ious['head, LayerNorm affine refitted'].add(_upsampled(refit, label, head), label)
            for name, source, (weight, bias) in (
                    ('linear probe on the embeddings', emb, probe_e),
                    ('linear probe on the features', feat, probe_x)):
                probe_logits = F.conv2d(source, weight[..., None, None], bias)
                ious[name].add(_upsampled(probe_logits, label, head), label)
    commit = head_commit()
    per_class = {name: iou.per_class() for name, iou in ious.items()}
    return dict(run=osp.basename(osp.normpath(run_dir)), checkpoint=osp.basename(checkpoint),
                train_pixels=int(y.numel()), seed=seed, commit=commit,
                mIoU={name: round(sum(v) / c, 2) for name, v in per_class.items()},
                IoU={name: [round(i, 2) for i in v] for name, v in per_class.items()},
                affine=dict(trained_scale=head.score_norm.weight.tolist(),
                            trained_shift=head.score_norm.bias.tolist(),
                            refitted_scale=scale.tolist(), refitted_shift=shift.tolist()))


def main():
    args = runs_parser(__doc__.splitlines()[0]).parse_args()
    data_root = find_camvid(args.data_root, ROOT)
    for run in args.runs:
        record = split_classifier(run, data_root, args.pixels_per_image, args.seed)
        print(f"{record['run']}: " + ', '.join(f'{k} {v:.2f}' for k, v in record['mIoU'].items()),
              flush=True)
        append_record(RESULTS, record)


if __name__ == '__main__':
    main()
