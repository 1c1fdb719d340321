"""Bad data files and folders are named, with what is wrong: an empty image,
an RGB label, a label of another size, a 16-bit label with values that would
wrap, an empty folder, a suffix in another case. mmseg's own loading
transforms and dataset class, as configs name them."""
import os
import shutil

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from mmseg.registry import DATASETS
from mmseg_dnc.datasets import DataFaultError
from mmseg_dnc.engine.config_checks import check_dataset_folders
from .conftest import CAMVID, TINY_CONFIG, run_tool

FIRST = '0001TP_006690.png'


@pytest.fixture
def camvid(tmp_path):
    """Four CamVid train pairs in tmp_path (train/, trainannot/), sorted first to last."""
    names = sorted(os.listdir(os.path.join(CAMVID, 'train')))[:4]
    for folder in ('train', 'trainannot'):
        (tmp_path / folder).mkdir()
        for name in names:
            shutil.copy(os.path.join(CAMVID, folder, name), tmp_path / folder / name)
    assert names[0] == FIRST
    return tmp_path


def dataset(data_root, pipeline='train_pipeline'):
    cfg = Config.fromfile(TINY_CONFIG)
    return DATASETS.build(dict(type='CamVidDataset', data_root=str(data_root),
                               data_prefix=dict(img_path='train', seg_map_path='trainannot'),
                               pipeline=cfg[pipeline]))


def rewrite_label(path, edit):
    Image.fromarray(edit(np.array(Image.open(path)))).save(path)


def rewrite_label_16_bit(path, edit=lambda label: label):
    label = np.array(Image.open(path)).astype(np.uint16)
    cv2.imwrite(str(path), edit(label))  # a 16-bit grayscale PNG


def with_values(*values):
    def edit(label):
        label[0, :len(values)] = values
        return label
    return edit


FAULTS = {
    'empty image': (lambda root: open(root / 'train' / FIRST, 'wb').close(),
                    f'train/{FIRST} is an empty file \\(0 bytes\\), not an image'),
    'empty label': (lambda root: open(root / 'trainannot' / FIRST, 'wb').close(),
                    f'trainannot/{FIRST} is an empty file \\(0 bytes\\), not a label map'),
    'not an image': (lambda root: (root / 'train' / FIRST).write_bytes(b'<html>' * 20),
                     f'train/{FIRST} cannot be read as an image'),
    'RGB label': (lambda root: rewrite_label(root / 'trainannot' / FIRST,
                                             lambda a: np.stack([a] * 3, -1)),
                  rf'trainannot/{FIRST} has 3 channels \(shape \(360, 480, 3\)\); a label map '
                  'has one: a class index per pixel'),
    'label of another size': (lambda root: rewrite_label(root / 'trainannot' / FIRST,
                                                         lambda a: a[:300, :400].copy()),
                              f'trainannot/{FIRST} is 300x400 \\(height x width\\), and its '
                              f'image .*train/{FIRST} is 360x480'),
    '16-bit label with values over 255': (
        lambda root: rewrite_label_16_bit(root / 'trainannot' / FIRST, with_values(264, 1000)),
        f'trainannot/{FIRST} is a uint16 label map with values that are not class indices: '
        '264, 1000. mmseg reads labels as 8-bit and would read them as 8, 232'),
}


@pytest.mark.parametrize('pipeline', ['train_pipeline', 'test_pipeline'])
@pytest.mark.parametrize('fault', list(FAULTS))
def test_a_bad_file_is_named_with_what_is_wrong(fault, pipeline, camvid):
    damage, message = FAULTS[fault]
    damage(camvid)
    with pytest.raises(DataFaultError, match=message):
        dataset(camvid, pipeline)[0]
    dataset(camvid, pipeline)[1]  # the other samples load as before


def test_a_16_bit_label_of_class_indices_reads_as_its_8_bit_copy(camvid):
    as_8_bit = dataset(camvid, 'test_pipeline')[0]['data_samples'].gt_sem_seg.data
    rewrite_label_16_bit(camvid / 'trainannot' / FIRST)
    assert Image.open(camvid / 'trainannot' / FIRST).mode == 'I;16'
    as_16_bit = dataset(camvid, 'test_pipeline')[0]['data_samples'].gt_sem_seg.data
    assert (as_16_bit == as_8_bit).all() and (as_8_bit == 255).any()


def test_an_empty_folder_is_named(camvid):
    for name in os.listdir(camvid / 'train'):
        os.unlink(camvid / 'train' / name)
    with pytest.raises(DataFaultError, match=f'The dataset is empty: {camvid}/train '
                       r"\(the dataset's data_root joined with data_prefix.img_path\) holds no "
                       "file ending in '.png'"):
        dataset(camvid)


def test_a_suffix_in_another_case_is_not_skipped_silently(camvid):
    second = sorted(os.listdir(camvid / 'train'))[1]
    os.rename(camvid / 'train' / second, camvid / 'train' / second.replace('.png', '.PNG'))
    with pytest.raises(DataFaultError, match=f"1 image\\(s\\) in {camvid}/train end in another "
                       f"case than the suffix '.png', and the dataset would skip them: "
                       f"{second.replace('.png', '.PNG')}"):
        dataset(camvid)


def test_the_tools_check_the_folders_of_any_mmseg_dataset(tmp_path):
    (tmp_path / 'images' / 'training').mkdir(parents=True)
    (tmp_path / 'images' / 'training' / 'a.JPG').write_bytes(b'x')
    cfg = Config(dict(train_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2, dataset=dict(
            type='ADE20KDataset', data_root=str(tmp_path),
            data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))))))
    with pytest.raises(DataFaultError, match=f"in {tmp_path}/images/training end in another "
                       "case than the suffix '.jpg'.*: a.JPG"):
        check_dataset_folders(cfg, ['train_dataloader'])
    os.unlink(tmp_path / 'images' / 'training' / 'a.JPG')
    with pytest.raises(DataFaultError, match='The dataset is empty'):
        check_dataset_folders(cfg, ['train_dataloader'])
    cfg.train_dataloader.dataset.dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(DataFaultError, match=f'The image folder {tmp_path}/nowhere/images/'
                       'training .* does not exist'):
        check_dataset_folders(cfg, ['train_dataloader'])


@pytest.mark.parametrize('fault', ['empty folder', 'RGB label'])
def test_data_faults_through_train_tool(fault, camvid):
    if fault == 'empty folder':
        shutil.rmtree(camvid / 'train')
        (camvid / 'train').mkdir()
        expected = f"DataFaultError: The dataset is empty: {camvid}/train"
    else:
        FAULTS['RGB label'][0](camvid)
        expected = f'DataFaultError: {camvid}/trainannot/{FIRST} has 3 channels'
    shutil.copytree(camvid / 'train', camvid / 'val')
    shutil.copytree(camvid / 'trainannot', camvid / 'valannot')
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(camvid / 'wd'), '--cfg-options',
                    'train_cfg.max_iters=2', 'train_dataloader.sampler.shuffle=False',
                    'train_dataloader.num_workers=1',
                    *(f'{loader}.dataset.data_root={camvid}'
                      for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')),
                    check=False)
    assert proc.returncode != 0 and expected in proc.stderr, proc.stderr[-2000:]
