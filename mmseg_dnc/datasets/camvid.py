"""CamVid in the SegNet layout, which mmseg lacks.

    data_root/
      train/*.png  trainannot/*.png   (367 pairs)
      val/*.png    valannot/*.png     (101)
      test/*.png   testannot/*.png    (233)

Labels are L-mode PNGs with 0..10 for the 11 classes and 11 for "Unlabelled",
which is mapped to 255, mmseg's ignore index, when the labels are loaded.

A file's drive (video sequence) is its name up to the first '_' (train:
0001TP 62, 0006R0 101, 0016E5 204 frames; val: 0016E5 101). ``drives`` keeps
only some, ``exclude_drives`` leaves some out: e.g. train without 0006R0 and
test on its 101 frames, a drive the model has never seen.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from .folders import DataFaultError, check_folder_of

UNLABELLED = 11


def drive_of(path: str) -> str:
    """A CamVid frame's drive: its file name up to the first '_'."""
    return osp.basename(path).split('_')[0]


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes (SegNet version), label 11 ignored."""

    METAINFO = dict(
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
                 'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                 [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                 [64, 0, 128], [64, 64, 0], [0, 128, 192]])

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', drives=None,
                 exclude_drives=(), **kwargs):
        for name, value in (('drives', drives), ('exclude_drives', exclude_drives)):
            if value is not None and (isinstance(value, str) or not all(
                    isinstance(d, str) for d in value)):
                raise TypeError(f'CamVidDataset({name}={value!r}): a list of drive names, '
                                "e.g. ['0006R0'].")
        self.drives = None if drives is None else tuple(drives)
        self.exclude_drives = tuple(exclude_drives)
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def load_data_list(self):
        """mmseg's listing; a missing or empty image folder or ann_file, and
        images whose suffix differs in case (which it skips), are named
        (``DataFaultError``)."""
        from_file = self.ann_file and not osp.isdir(self.ann_file)
        if not from_file:
            check_folder_of(self)
        data_list = super().load_data_list()
        if not data_list:  # an ann_file that lists nothing
            raise DataFaultError(f'The dataset is empty: its ann_file {self.ann_file} lists '
                                 'no image.')
        return self._select_drives(data_list)

    def _select_drives(self, data_list):
        if self.drives is None and not self.exclude_drives:
            return data_list
        found = sorted({drive_of(d['img_path']) for d in data_list})
        unknown = sorted(set(self.drives or ()) | set(self.exclude_drives))
        unknown = [d for d in unknown if d not in found]
        if unknown:
            raise DataFaultError(f'CamVidDataset: no frame of drive {", ".join(unknown)} in '
                                 f'{self.data_prefix.get("img_path")}; its drives are '
                                 f'{", ".join(found)}.')
        kept = [d for d in data_list if drive_of(d['img_path']) not in self.exclude_drives
                and (self.drives is None or drive_of(d['img_path']) in self.drives)]
        if not kept:
            raise DataFaultError(f'CamVidDataset(drives={self.drives}, exclude_drives='
                                 f'{self.exclude_drives}) leaves no frame.')
        return kept

    @classmethod
    def get_label_map(cls, new_classes=None):
        """mmseg's class-subset map, plus Unlabelled (11) -> ignore (255)."""
        label_map = super().get_label_map(new_classes) or {}
        return {**label_map, UNLABELLED: 255}
