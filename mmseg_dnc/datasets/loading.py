"""mmseg's loading transforms, checked: a bad data file is named, with what is wrong.

mmseg loads an empty image file into an OpenCV assertion (``!buf.empty()``),
and an RGB label or a label of another size than its image into a
``torch.stack`` error inside the decode head's loss, three calls past the
batch; none of them names the file. Importing ``mmseg_dnc`` registers these
subclasses under mmseg's own names, ``LoadImageFromFile`` and
``LoadAnnotations``, with the same arguments, so every config and every
dataset (train, val, test, inference) gets them: an unreadable or empty file
and a label that is not single-channel or not its image's size raise
:class:`~.folders.DataFaultError` naming the file.
"""
import os.path as osp

from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from ..takeovers import enabled
from .folders import DataFaultError


def _cause(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[-1].strip()}' if lines else type(error).__name__


def _refuse_empty(path: str, what: str, partner: str) -> None:
    if isinstance(path, str) and osp.isfile(path) and osp.getsize(path) == 0:
        raise DataFaultError(f'{path} is an empty file (0 bytes), not {what}. Replace it, or '
                             f'remove it and its {partner} from the dataset.')


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile``; a file it cannot load is named."""

    def transform(self, results: dict):
        if self.ignore_empty:  # the config asked to skip unreadable images
            return super().transform(results)
        path = results.get('img_path')
        _refuse_empty(path, 'an image', 'label')
        try:
            return super().transform(results)
        except Exception as error:  # noqa: BLE001  (decoders fail in many ways)
            raise DataFaultError(f'{path} cannot be read as an image ({_cause(error)}). '
                                 'Replace it, or remove it and its label from the dataset.'
                                 ) from error


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations``; the label map must be readable, one class
    index per pixel, and its image's size."""

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        _refuse_empty(path, 'a label map', 'image')
        try:
            super()._load_seg_map(results)
        except (AssertionError, KeyError):
            raise  # the config's (e.g. reduce_zero_label), not the file's
        except Exception as error:  # noqa: BLE001
            raise DataFaultError(f'{path} cannot be read as a label map ({_cause(error)}). '
                                 'Replace it, or remove it and its image from the dataset.'
                                 ) from error
        label = results['gt_seg_map']
        if label.ndim != 2:
            raise DataFaultError(
                f'{path} has {label.shape[-1]} channels (shape {label.shape}); a label map has '
                'one: a class index per pixel (an L- or P-mode PNG). A colour-coded label must '
                "be converted to class indices with the dataset's palette first.")
        image = results.get('ori_shape')  # the image as loaded, before any resize
        if image is not None and tuple(label.shape) != tuple(image[:2]):
            raise DataFaultError(
                f'{path} is {label.shape[0]}x{label.shape[1]} (height x width), and its image '
                f'{results.get("img_path")} is {image[0]}x{image[1]}: a label map must be its '
                "image's size. Re-export the label at the image's size.")


if enabled('transforms'):  # every mmseg config and dataset, under mmseg's own names
    TRANSFORMS.register_module(name='LoadImageFromFile', module=CheckedLoadImageFromFile,
                               force=True)
    TRANSFORMS.register_module(name='LoadAnnotations', module=CheckedLoadAnnotations,
                               force=True)
