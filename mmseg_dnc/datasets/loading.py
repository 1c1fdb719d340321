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

mmseg also casts every label to uint8 as it decodes it, so a 16-bit label
holding 264 trains as class 8, without a word. A label with values that do
not fit in a byte is refused here, naming the values; one whose values all
fit (a 16-bit PNG of class indices) is read as it is, like its 8-bit copy.
Values that fit but are not classes are refused by the training loss and by
the metric (``mmseg_dnc.evaluation``), which know the classes.
"""
import os.path as osp

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS
from ..checkpointing.takeovers import enabled
from .folders import DataFaultError


PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
SHOWN = 10  # values named in a message


def _cause(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[-1].strip()}' if lines else type(error).__name__


def _refuse_empty(path: str, what: str, partner: str) -> None:
    if isinstance(path, str) and osp.isfile(path) and osp.getsize(path) == 0:
        raise DataFaultError(f'{path} is an empty file (0 bytes), not {what}. Replace it, or '
                             f'remove it and its {partner} from the dataset.')


def _fits_a_byte_by_header(path: str) -> bool:
    """Whether ``path`` is a local PNG of at most 8 bits a sample, read from its
    header alone: no value in it can exceed 255, so nothing needs decoding."""
    if not (isinstance(path, str) and osp.isfile(path)):
        return False
    with open(path, 'rb') as file:
        head = file.read(26)  # signature, IHDR length and type, width, height, bit depth
    return len(head) == 26 and head[:8] == PNG_SIGNATURE and head[24] <= 8


def _shown(values: np.ndarray) -> str:
    more = f' and {len(values) - SHOWN} more' if len(values) > SHOWN else ''
    return ', '.join(str(v) for v in values[:SHOWN].tolist()) + more


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
    index per pixel, and its image's size, and its values must fit in a byte.

    mmseg reads labels as uint8 (255 is its ignore index, and ``label_map``
    and ``reduce_zero_label`` work on bytes), so a value over 255, or a
    negative or fractional one, cannot be a class: it is refused rather than
    wrapped (264 would be class 8). A 16-bit label whose values all fit is
    read as it is: it is the same label as its 8-bit copy, and refusing it
    would only make the user re-save files. An 8-bit PNG (mmseg's datasets
    ship these) is told from its header, and decoded once, as before.
    """

    def _load_seg_map(self, results: dict) -> None:
        path = results.get('seg_map_path')
        _refuse_empty(path, 'a label map', 'image')
        try:
            if not _fits_a_byte_by_header(path):
                self._refuse_values_over_a_byte(path)
            super()._load_seg_map(results)
        except (AssertionError, KeyError, DataFaultError):
            raise  # the config's (e.g. reduce_zero_label), or already named
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

    def _refuse_values_over_a_byte(self, path: str) -> None:
        """Decode ``path`` as mmseg does, before its cast to uint8, and refuse
        the values that the cast would change."""
        raw = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                               flag='unchanged', backend=self.imdecode_backend)
        if raw is None or raw.dtype == np.uint8:
            return  # undecodable: mmseg's own decode says so, named by the caller
        as_read = raw.astype(np.uint8)
        changed = raw != as_read
        if not changed.any():
            return
        values, first = np.unique(raw[changed], return_index=True)
        raise DataFaultError(
            f'{path} is a {raw.dtype} label map with values that are not class indices: '
            f'{_shown(values)}. mmseg reads labels as 8-bit and would read them as '
            f'{_shown(as_read[changed][first])}, without a word. A label map holds class '
            'indices 0..N-1, and 255 where pixels are ignored: map these values to classes '
            '(or to 255) and save the label as an 8-bit single-channel PNG (L or P mode).')


if enabled('transforms'):  # every mmseg config and dataset, under mmseg's own names
    TRANSFORMS.register_module(name='LoadImageFromFile', module=CheckedLoadImageFromFile,
                               force=True)
    TRANSFORMS.register_module(name='LoadAnnotations', module=CheckedLoadAnnotations,
                               force=True)
