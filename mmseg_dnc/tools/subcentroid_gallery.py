"""What the sub-centroids stand for: per class, its K sub-centroids each shown
as its nearest training patches; a heat map of similarities between all
sub-centroids; and the diversity table (collapsed or not). A row titled
'border' is a sub-centroid shown mostly by pixels on the image's edge.

    python -m mmseg_dnc.tools.subcentroid_gallery CONFIG CKPT [--classes NAME ...]
        [--out-dir DIR] [--case-base FILE] [--data-root DIR]

(the console script ``mmseg-dnc-gallery``; tools/subcentroid_gallery.py calls it)

Needs the checkpoint's case base (mmseg-dnc-snap, or tools/snap_subcentroids.py,
writes it), or a checkpoint trained with ``SnapSubcentroidsHook``.
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

import mmseg_dnc  # noqa: F401
from mmseg_dnc.models.provenance import UntrustedSourceError
from mmseg_dnc.checkpointing import load_checkpoint_file
from mmseg_dnc.explain import diversity, load_case_base, used_slots
from mmseg_dnc.explain.figures import BORDER_UNKNOWN, class_gallery, similarity_heatmap


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Draw the gallery as the command line ``argv`` says (default: ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--classes', nargs='+', help='class names (default: all)')
    parser.add_argument('--out-dir', help='default: CKPT_gallery/')
    parser.add_argument('--case-base', help='default: CKPT.casebase.pth')
    parser.add_argument('--data-root', help="the training set's root, if not the config's: "
                        'the case base\'s images are read only from inside it')
    args = parser.parse_args(argv)
    # the checkpoint first: an untrusted one is refused before its case base is read
    sub_centroids = load_checkpoint_file(args.checkpoint)['state_dict'][
        'decode_head.sub_centroids'].cpu()
    try:
        case_base = load_case_base(args.config, args.checkpoint, args.case_base,
                                   args.data_root)
    except (FileNotFoundError, UntrustedSourceError) as error:
        raise SystemExit(f'error: {error}')
    classes = case_base['classes']
    unknown = set(args.classes or []) - set(classes)
    if unknown:
        raise SystemExit(f'error: unknown classes {sorted(unknown)}; the classes are {classes}')
    out_dir = args.out_dir or osp.splitext(args.checkpoint)[0] + '_gallery'
    os.makedirs(out_dir, exist_ok=True)
    if 'border_flagged' not in case_base:
        print(f'note: {BORDER_UNKNOWN}')
    stats = diversity(sub_centroids, case_base['wins'], used_slots(case_base))
    for c, name in enumerate(classes):
        if args.classes and name not in args.classes:
            continue
        class_gallery(case_base, c, stats['share'], osp.join(out_dir, f'{name}.png'))
    similarity_heatmap(sub_centroids, classes, osp.join(out_dir, 'similarity.png'),
                       used_slots(case_base))
    print(f'gallery: {osp.abspath(out_dir)}')


if __name__ == '__main__':
    main()
