"""K per class from pixel frequency, for a config's training set.

Counts the labelled pixels of every class in the training set (labels only;
mmseg's LoadAnnotations, so reduce_zero_label applies) and prints one K per
class, proportional to the square root of its pixel count and averaging
--mean-k (``subcentroids_from_frequency``), as the option to train with:

    python tools/k_per_class.py CONFIG [--data-root DIR] [--mean-k 10] [--k-min 2] [--k-max 20]
    python tools/train.py CONFIG --cfg-options "model.decode_head.num_subcentroids=[...]"
"""
import argparse
import copy

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar

import mmseg_dnc  # noqa: F401
from mmseg.registry import DATASETS
from mmseg.utils import register_all_modules
from mmseg_dnc.models.subcentroid_learning import subcentroids_from_frequency


def class_pixel_counts(cfg: Config, data_root: str = None):
    """(C,) labelled pixels per class in ``cfg``'s training set, and the
    class names (the dataset's metainfo, config overrides included)."""
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:  # RepeatDataset, ...
        dataset_cfg = dataset_cfg.dataset
    if 'pipeline' not in dataset_cfg:
        raise ValueError(f'{dataset_cfg.get("type")}: give a training set with a pipeline '
                         '(ConcatDataset is not supported; count one of its parts)')
    dataset_cfg.pipeline = [dict(type='LoadAnnotations')]
    if data_root:
        dataset_cfg.data_root = data_root
    dataset = DATASETS.build(dataset_cfg)
    num_classes = len(dataset.metainfo['classes'])
    counts = np.zeros(num_classes, dtype=np.int64)
    bar = ProgressBar(len(dataset))
    for i in range(len(dataset)):
        label = dataset[i]['gt_seg_map']
        counts += np.bincount(label[label < num_classes].ravel(), minlength=num_classes)
        bar.update()
    return counts, list(dataset.metainfo['classes'])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--data-root', help="dataset root, if not the config's")
    parser.add_argument('--mean-k', type=float, default=10.0)
    parser.add_argument('--k-min', type=int, default=2)
    parser.add_argument('--k-max', type=int, default=20)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    counts, classes = class_pixel_counts(cfg, args.data_root)
    ks = subcentroids_from_frequency(counts.tolist(), args.mean_k, args.k_min, args.k_max)
    print('\n| class | pixels | share | K |\n|---|---:|---:|---:|')
    for name, n, k in zip(classes, counts.tolist(), ks):
        print(f'| {name} | {n} | {100 * n / max(counts.sum(), 1):.2f}% | {k} |')
    print("\n--cfg-options \"model.decode_head.num_subcentroids=[" + ",".join(map(str, ks)) + "]\"")


if __name__ == '__main__':
    main()
