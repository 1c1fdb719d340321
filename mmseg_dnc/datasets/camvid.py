"""CamVid in the SegNet layout, which mmseg lacks.

    data_root/
      train/*.png  trainannot/*.png   (367 pairs)
      val/*.png    valannot/*.png     (101)
      test/*.png   testannot/*.png    (233)

Labels are L-mode PNGs with 0..10 for the 11 classes and 11 for "Unlabelled",
which is mapped to 255, mmseg's ignore index, when the labels are loaded.
"""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

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

    @classmethod
    def get_label_map(cls, new_classes=None):
        """mmseg's class-subset map, plus Unlabelled (11) -> ignore (255)."""
        label_map = super().get_label_map(new_classes) or {}
        return {**label_map, UNLABELLED: 255}
