"""Snap sub-centroids to real training pixels: one pass over the training set
finds every sub-centroid's nearest pixels of its class and stores them beside
the checkpoint (CKPT.casebase.pth), with a diversity table.

    python -m mmseg_dnc.tools.snap_subcentroids CONFIG CKPT [--data-root DIR] [--top-n 8]
        [--replace] [--device cpu|cuda]

(the console script ``mmseg-dnc-snap``; tools/snap_subcentroids.py calls it)

With --replace, every sub-centroid becomes the embedding of its nearest real
pixel (CKPT_casebased.pth, a literally case-based classifier, whose provenance
``subcentroid_source`` and ``meta['dnc_pixel_sources']`` are rewritten to name
those pixels), and both models are evaluated on the config's test set to
report the mIoU change.
"""
import argparse
import json
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmseg_dnc  # noqa: F401
from mmseg_dnc.checkpointing import load_checkpoint_file, save_atomic
from mmseg_dnc.explain import (build_case_base, case_base_path, diversity, load_dnc_model,
                               one_by_one, training_set, used_slots)
from mmseg_dnc.engine import prepare_config
from mmseg_dnc.models.provenance import META_KEY, STATE_KEY, compact_sources


def evaluate(cfg, checkpoint, data_root, work_dir):
    cfg = prepare_config(cfg, cfg_options=dict(load_from=checkpoint), data_root=data_root,
                         work_dir=work_dir)
    return Runner.from_cfg(cfg).test()


BORDER_LEGEND = ("border k: the sub-centroids at least half of whose nearest training pixels "
                 "lie on the image's edge (first or last feature row or column); "
                 "'?': not known, a case base made before border flags")


def _border_ks(case_base, c: int) -> str:
    flagged = case_base.get('border_flagged')
    if flagged is None:
        return '?'
    ks = flagged[c].nonzero()[:, 0].tolist()
    return ' '.join(map(str, ks)) if ks else '-'


def used_share(stats: dict, case_base: dict, c: int):
    """(K_c,) class c's share of pixels won by each of the sub-centroids it uses."""
    return stats['share'][c][used_slots(case_base)[c]]


def diversity_table(case_base, sub_centroids, seeded=None) -> Tuple[str, dict]:
    """The table (and a legend line under it), and its numbers; ``seeded``
    (C,) bool marks the classes a ``subcentroid_init='kmeans++'`` head has not
    seeded yet. A case base without ``border_flagged`` shows '?' for them."""
    stats = diversity(sub_centroids, case_base['wins'], used_slots(case_base))
    lines = ['| class | mean pairwise cos | effective K | share of pixels won per k (%) '
             '| border k |',
             '|---|---:|---:|---|---|']
    for c, name in enumerate(case_base['classes']):
        border = _border_ks(case_base, c)
        if seeded is not None and not bool(seeded[c]):
            lines.append(f'| {name} | - | - | not seeded: no training batch held K pixels '
                         f'of it; its sub-centroids are still random | {border} |')
            continue
        share = ' '.join(f'{100 * v:.0f}' for v in used_share(stats, case_base, c).tolist())
        lines.append(f"| {name} | {stats['mean_pairwise_cosine'][c]:.3f} | "
                     f"{stats['effective_k'][c]:.1f} | {share} | {border} |")
    lines += ['', BORDER_LEGEND]
    return '\n'.join(lines), stats


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Snap as the command line ``argv`` says (default: ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--data-root', help='dataset root, if not the config\'s')
    parser.add_argument('--top-n', type=int, default=8, help='nearest pixels kept per sub-centroid')
    parser.add_argument('--replace', action='store_true',
                        help='make each sub-centroid its nearest real pixel and evaluate')
    parser.add_argument('--device', help='cpu or cuda (default: cuda when present)')
    parser.add_argument('--work-dir', default='work_dirs/snap')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_dataloader.dataset.indices=50')
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)

    model, cfg = load_dnc_model(cfg, args.checkpoint, args.device)
    dataset = training_set(cfg, args.data_root)
    ks = model.decode_head.num_subcentroids
    print(f'Snapping {sum(ks)} sub-centroids of {len(ks)} classes (K '
          f"{ks[0] if min(ks) == max(ks) else f'{min(ks)}-{max(ks)}'}) to {len(dataset)} "
          'training images')
    case_base = build_case_base(model, one_by_one(dataset), args.top_n)
    out = case_base_path(args.checkpoint)
    save_atomic(case_base, out)
    print(f'\ncase base: {out}')
    sub_centroids = model.decode_head.sub_centroids.cpu()
    seeded = model.decode_head.subcentroid_seeded
    table, stats = diversity_table(case_base, sub_centroids,
                                   None if seeded is None else seeded.cpu())
    print(table)
    with open(osp.splitext(out)[0] + '.diversity.json', 'w') as f:
        json.dump({name: dict(mean_pairwise_cosine=float(stats['mean_pairwise_cosine'][c]),
                              effective_k=float(stats['effective_k'][c]),
                              share=used_share(stats, case_base, c).tolist(),
                              seeded=None if seeded is None else bool(seeded[c]),
                              border_flagged=case_base['border_flagged'][c].tolist())
                   for c, name in enumerate(case_base['classes'])}, f, indent=1)

    if args.replace:
        checkpoint = load_checkpoint_file(args.checkpoint, map_location='cpu')
        state = checkpoint['state_dict']
        key = 'decode_head.sub_centroids'
        has = case_base['has_pixels']
        replaced = torch.where(has[..., None], case_base['nearest_embedding'], state[key])
        state[key] = replaced.to(state[key].dtype)
        # the provenance describes the new classifier: each replaced
        # sub-centroid is its top pixel, the kept ones are no pixel (-1)
        top = torch.stack([case_base['image'][0], case_base['y'][0], case_base['x'][0]], -1)
        state[STATE_KEY], sources = compact_sources(top, has,
                                                    lambda i: case_base['image_paths'][i])
        meta = dict(checkpoint.get('meta') or {}, **{META_KEY: sources})
        kept = int((~has & used_slots(case_base)).sum())
        out_ckpt = osp.splitext(args.checkpoint)[0] + '_casebased.pth'
        save_atomic(dict(state_dict=state, meta=meta), out_ckpt)
        print(f'case-based checkpoint: {out_ckpt} ({int(has.sum())} sub-centroids replaced by '
              f'their nearest training pixel; {kept} without pixels of their class kept)')
        before = evaluate(cfg, args.checkpoint, args.data_root,
                          osp.join(args.work_dir, 'orig'))
        after = evaluate(cfg, out_ckpt, args.data_root,
                         osp.join(args.work_dir, 'casebased'))
        print(f"\nmIoU: learned sub-centroids {before['mIoU']:.2f} -> nearest real pixels "
              f"{after['mIoU']:.2f} ({after['mIoU'] - before['mIoU']:+.2f}); "
              f"mAcc {before['mAcc']:.2f} -> {after['mAcc']:.2f}")


if __name__ == '__main__':
    main()
