"""Explain a DNC prediction with real training pixels: one PNG with the
prediction, the nearest sub-centroid map, a confidence map and, for chosen
pixels (default: the least and the most confident), the sub-centroids that
decided them and the training patches those stand for.

    python -m mmseg_dnc.tools.explain_prediction CONFIG CKPT IMAGE [--points Y,X ...]
        [--out FILE.png] [--case-base FILE] [--data-root DIR] [--device cpu|cuda]

(the console script ``mmseg-dnc-explain``; tools/explain_prediction.py calls it)

Needs the checkpoint's case base (mmseg-dnc-snap, or tools/snap_subcentroids.py,
writes it), or a checkpoint trained with ``SnapSubcentroidsHook``.
"""
import argparse
import os.path as osp
from typing import Optional, Sequence

from mmcv.transforms import Compose
from mmengine.dataset import pseudo_collate
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

import mmseg_dnc  # noqa: F401
from mmseg_dnc.models.provenance import UntrustedSourceError
from mmseg_dnc.explain import load_case_base, load_dnc_model
from mmseg_dnc.explain.figures import BORDER_UNKNOWN, analyse, explanation_panel


def point(text):
    y, x = (int(v) for v in text.split(','))
    return y, x


def _loads_labels(transform_type) -> bool:
    """A pipeline step that loads the label map (mmseg's LoadAnnotations or a subclass)."""
    cls = TRANSFORMS.get(transform_type) if isinstance(transform_type, str) else transform_type
    return isinstance(cls, type) and issubclass(cls, LoadAnnotations)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Explain as the command line ``argv`` says (default: ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument('--points', type=point, nargs='+',
                        help='pixels to explain, as Y,X in image coordinates')
    parser.add_argument('--out', help='output PNG (default: beside the image name, .explained.png)')
    parser.add_argument('--case-base', help='default: CKPT.casebase.pth')
    parser.add_argument('--data-root', help="the training set's root, if not the config's: "
                        'the case base\'s images are read only from inside it')
    parser.add_argument('--device')
    args = parser.parse_args(argv)
    # the checkpoint first: an untrusted one is refused before its case base is read
    model, cfg = load_dnc_model(args.config, args.checkpoint, args.device)
    try:
        case_base = load_case_base(args.config, args.checkpoint, args.case_base,
                                   args.data_root)
    except (FileNotFoundError, UntrustedSourceError) as error:
        raise SystemExit(f'error: {error}')
    pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline  # no labels
                        if not _loads_labels(t['type'])])
    data = pseudo_collate([pipeline(dict(img_path=args.image))])
    analysis = analyse(model, data)
    out = args.out or osp.splitext(osp.basename(args.image))[0] + '.explained.png'
    explanation_panel(analysis, case_base, model.dataset_meta['palette'], args.points,
                      path=out, title=f'Why DNC predicts what it does: {osp.basename(args.image)}')
    if 'border_flagged' not in case_base:
        print(f'note: {BORDER_UNKNOWN}')
    print(f'explanation: {osp.abspath(out)}')


if __name__ == '__main__':
    main()
