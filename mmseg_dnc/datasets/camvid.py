"""CamVid in the SegNet layout, which mmseg lacks.

    data_root/
      train/*.png  trainannot/*.png   (367 pairs)
      val/*.png    valannot/*.png     (101)
      test/*.png   testannot/*.png    (233)

Labels are L-mode PNGs with 0..10 for the 11 classes and 11 for "Unlabelled",
which is mapped to 255, mmseg's ignore index, when the labels are loaded.
"""
import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from .folders import DataFaultError, check_folder_of

UNLABELLED = 11


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes (SegNet version), label 11 ignored."""

    METAINFO = dict(
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
                 'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128],
                 [60, 40, 222], [128, 128, 0], [192, 128, 128], [64, 64, 128],
                 [64, 0, 128], [64, 64, 0], [0, 128, 192]])

    def __init__(self, img_suffix='.png', seg_map_suffix='.png', **kwargs):
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
        return data_list

    @classmethod
    def get_label_map(cls, new_classes=None):
        """mmseg's class-subset map, plus Unlabelled (11) -> ignore (255)."""
        label_map = super().get_label_map(new_classes) or {}
        return {**label_map, UNLABELLED: 255}
