"""Val/test label values that are not classes are refused before the metrics
count them (mmseg's IoUMetric leaves them out without a word): the real
CamVid val pipeline and mmseg's evaluator, with IoUMetric as configs name it."""
import os
import shutil

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from PIL import Image

from mmseg.registry import DATASETS, METRICS
from mmseg_dnc.datasets import DataFaultError
from mmseg_dnc.evaluation import CheckedIoUMetric
from .conftest import CAMVID, TINY_CONFIG

ROAD = 3  # CamVid's class 3 of 11


@pytest.fixture
def camvid_val(tmp_path):
    """Two CamVid val pairs in tmp_path (val/, valannot/)."""
    names = sorted(os.listdir(os.path.join(CAMVID, 'val')))[:2]
    for folder in ('val', 'valannot'):
        (tmp_path / folder).mkdir()
        for name in names:
            shutil.copy(os.path.join(CAMVID, folder, name), tmp_path / folder / name)
    return tmp_path


def evaluate(data_root):
    """mmseg's IoUMetric over the val pairs as the val loop runs it, with the
    labels as predictions (the model plays no part in the check)."""
    cfg = Config.fromfile(TINY_CONFIG)
    val = DATASETS.build(dict(type='CamVidDataset', data_root=str(data_root),
                              data_prefix=dict(img_path='val', seg_map_path='valannot'),
                              pipeline=cfg.test_pipeline))
    evaluator = Evaluator(METRICS.build(cfg.val_evaluator))
    evaluator.dataset_meta = val.metainfo
    for i in range(len(val)):
        sample = val[i]['data_samples']
        sample.pred_sem_seg = PixelData(data=sample.gt_sem_seg.data.clone())
        evaluator.process([sample])
    return evaluator.evaluate(len(val))


def test_a_correct_label_with_ignored_pixels_is_evaluated(camvid_val):
    first = sorted(os.listdir(camvid_val / 'valannot'))[0]
    assert (np.array(Image.open(camvid_val / 'valannot' / first)) == 11).any()  # -> 255
    assert 'mIoU' in evaluate(camvid_val)


def test_a_val_label_outside_the_classes_is_refused_before_the_metrics(camvid_val):
    assert isinstance(METRICS.build(dict(type='IoUMetric')), CheckedIoUMetric)
    second = sorted(os.listdir(camvid_val / 'valannot'))[1]
    path = camvid_val / 'valannot' / second
    label = np.array(Image.open(path))
    label[label == ROAD] = 200
    label[0, 0] = 12
    Image.fromarray(label).save(path)
    with pytest.raises(DataFaultError, match=(
            r'Labels outside the 11 classes \(0..10, or the ignore index 255\), which '
            rf'IoUMetric would leave out of every metric:\n  {path}: values \[12, 200\]\n')):
        evaluate(camvid_val)
