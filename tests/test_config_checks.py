"""num_classes is fixed in several places of an mmseg config (each head, each
dataset's class list); a disagreement is refused before anything is built,
naming every place and what to set."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmseg_dnc.engine import check_checkpoint_fits, check_num_classes
from mmseg_dnc.engine.config_checks import num_classes_in
from .conftest import ROOT, TINY_CONFIG, TINY_DATA, run_tool

SHIPPED = sorted(glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))) + [TINY_CONFIG]


@pytest.mark.parametrize('path', SHIPPED, ids=osp.basename)
def test_shipped_configs_agree(path):
    cfg = Config.fromfile(path)
    check_num_classes(cfg)
    found = num_classes_in(cfg)
    assert len(found) >= 4  # the decode head and the three datasets, at least
    assert found[0][0] == 'model.decode_head.num_classes'


def test_head_disagreeing_with_the_data_names_the_key_and_the_fix():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'dnc', 'deeplabv3_r101_cityscapes.py'))
    cfg.model.decode_head.num_classes = 150  # copied from the ADE20K config
    with pytest.raises(ValueError) as error:
        check_num_classes(cfg)
    assert str(error.value) == (
        'num_classes disagrees across the config:\n'
        '  model.decode_head.num_classes: 150\n'
        '  model.auxiliary_head.num_classes: 19\n'
        '  train_dataloader.dataset (CityscapesDataset): 19\n'
        '  val_dataloader.dataset (CityscapesDataset): 19\n'
        '  test_dataloader.dataset (CityscapesDataset): 19\n'
        'The datasets have 19 classes: set model.decode_head.num_classes=19 '
        '(in the config or with --cfg-options).')


def test_wrapped_datasets_and_metainfo_classes_count():
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=cfg.train_dataloader.dataset)
    cfg.val_dataloader.dataset.metainfo = dict(classes=('road', 'car', 'sky'))
    found = dict(num_classes_in(cfg))
    assert found['train_dataloader.dataset.dataset (CamVidDataset)'] == 11
    assert found['val_dataloader.dataset (CamVidDataset)'] == 3
    with pytest.raises(ValueError, match='The datasets disagree among themselves'):
        check_num_classes(cfg)


def test_train_tool_refuses_before_building(tmp_path):
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                    'model.auxiliary_head.num_classes=19', *TINY_DATA, check=False)
    assert proc.returncode != 0
    assert ('ValueError: num_classes disagrees across the config:\n'
            '  model.decode_head.num_classes: 11\n'
            '  model.auxiliary_head.num_classes: 19\n') in proc.stderr
    assert 'set model.auxiliary_head.num_classes=11' in proc.stderr
    assert not any(name.endswith('.log') for name in glob.glob(f'{tmp_path}/**', recursive=True))


def test_test_tool_refuses_a_checkpoint_for_other_classes(trained, tmp_path):
    work_dir, _ = trained  # the tiny config: 11 classes, K=10, 32 channels
    ckpt = osp.join(work_dir, 'iter_4.pth')
    cfg = Config.fromfile(TINY_CONFIG)
    check_checkpoint_fits(cfg, ckpt)
    cfg.model.decode_head.num_subcentroids = 5
    with pytest.raises(ValueError, match=r'iter_4.pth holds sub-centroids \(11, 10, 32\) '
                                         r"\(classes, K, channels\); this config's DNC head "
                                         r'needs \(11, 5, 32\)'):
        check_checkpoint_fits(cfg, ckpt)
    proc = run_tool('test.py', TINY_CONFIG, ckpt, '--work-dir', str(tmp_path), '--cfg-options',
                    'model.decode_head.num_subcentroids=5', *TINY_DATA, check=False)
    assert proc.returncode != 0 and 'its sub-centroids would be random' in proc.stderr
