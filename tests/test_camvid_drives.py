"""CamVidDataset's drives: train without one drive, score on it (real sample)."""
import pytest

from mmseg_dnc.datasets import CamVidDataset
from mmseg_dnc.datasets.camvid import drive_of
from mmseg_dnc.datasets.folders import DataFaultError
from .conftest import CAMVID


def drives_in(dataset):
    return [drive_of(dataset.get_data_info(i)['img_path']) for i in range(len(dataset))]


def build(**kwargs):
    return CamVidDataset(data_root=CAMVID, data_prefix=dict(img_path='train',
                                                           seg_map_path='trainannot'),
                         pipeline=[], **kwargs)


def test_drives_keep_and_leave_out_frames():
    every = build()
    drives = sorted(set(drives_in(every)))
    assert len(drives) >= 2, drives
    one = build(drives=[drives[0]])
    rest = build(exclude_drives=[drives[0]])
    assert set(drives_in(one)) == {drives[0]}
    assert drives[0] not in drives_in(rest)
    assert len(one) + len(rest) == len(every)
    assert drive_of('/x/train/0006R0_f02310.png') == '0006R0'


def test_unknown_drive_or_nothing_left_is_an_error():
    with pytest.raises(DataFaultError, match="no frame of drive 9999XX.*its drives are"):
        build(drives=['9999XX'])
    drives = sorted(set(drives_in(build())))
    with pytest.raises(DataFaultError, match='leaves no frame'):
        build(exclude_drives=drives)
    with pytest.raises(TypeError, match="a list of drive names"):
        build(drives='0006R0')
