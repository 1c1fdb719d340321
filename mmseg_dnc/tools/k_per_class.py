"""K per class and class weights from pixel frequency, for a config's training set.

Counts the labelled pixels of every class in the training set (labels only;
mmseg's LoadAnnotations, so reduce_zero_label applies) and prints one K per
class, proportional to the square root of its pixel count and averaging
--mean-k (``subcentroids_from_frequency``), and the median-frequency class
weights of the cross-entropy (Eigen & Fergus 2015; SegNet's CamVid recipe:
``median_frequency_weights``), as the options to train with:

    python -m mmseg_dnc.tools.k_per_class CONFIG [--data-root DIR] [--mean-k 10]
        [--k-min 2] [--k-max 20]
    python -m mmseg_dnc.tools.train CONFIG --cfg-options "model.decode_head.num_subcentroids=[...]"

(the console script ``mmseg-dnc-k-per-class``; tools/k_per_class.py calls it)
"""
import argparse
import copy
from typing import Optional, Sequence

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.utils import ProgressBar

import mmseg_dnc  # noqa: F401
from mmseg.registry import DATASETS
from mmseg.utils import register_all_modules
from mmseg_dnc.models.subcentroid_learning import subcentroids_from_frequency


def median_frequency_weights(counts: Sequence[int], present_in: Sequence[int]) -> list:
    """Median-frequency balancing: class c weighs ``median(f) / f_c``, where
    f_c = its pixels / the pixels of the images it appears in (Eigen &
    Fergus 2015, as SegNet weights CamVid). A class absent from every image
    weighs 0."""
    counts, present_in = np.asarray(counts, float), np.asarray(present_in, float)
    freq = np.divide(counts, present_in, out=np.zeros_like(counts), where=present_in > 0)
    median = np.median(freq[freq > 0])
    return [round(float(median / f), 4) if f > 0 else 0.0 for f in freq]


def class_pixel_counts(cfg: Config, data_root: str = None):
    """(C,) labelled pixels per class in ``cfg``'s training set, (C,) pixels
    of the images each class appears in, and the class names (the dataset's
    metainfo, config overrides included)."""
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
    present_in = np.zeros(num_classes, dtype=np.int64)
    bar = ProgressBar(len(dataset))
    for i in range(len(dataset)):
        label = dataset[i]['gt_seg_map']
        found = np.bincount(label[label < num_classes].ravel(), minlength=num_classes)
        counts += found
        present_in += (found > 0) * label.size
        bar.update()
    return counts, present_in, list(dataset.metainfo['classes'])


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Print K per class as the command line ``argv`` says (default: ``sys.argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--data-root', help="dataset root, if not the config's")
    parser.add_argument('--mean-k', type=float, default=10.0)
    parser.add_argument('--k-min', type=int, default=2)
    parser.add_argument('--k-max', type=int, default=20)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    register_all_modules()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    counts, present_in, classes = class_pixel_counts(cfg, args.data_root)
    ks = subcentroids_from_frequency(counts.tolist(), args.mean_k, args.k_min, args.k_max)
    weights = median_frequency_weights(counts, present_in)
    print('\n| class | pixels | share | K | class weight |\n|---|---:|---:|---:|---:|')
    for name, n, k, w in zip(classes, counts.tolist(), ks, weights):
        print(f'| {name} | {n} | {100 * n / max(counts.sum(), 1):.2f}% | {k} | {w} |')
    print("\n--cfg-options \"model.decode_head.num_subcentroids=[" + ",".join(map(str, ks)) + "]\"")
    print("--cfg-options \"model.decode_head.loss_decode.class_weight=["
          + ",".join(map(str, weights)) + "]\"")


if __name__ == '__main__':
    main()
