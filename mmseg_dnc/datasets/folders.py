"""Image folders that a dataset lists: say what is wrong before it is used.

mmseg's ``BaseSegDataset`` lists the files of ``data_root/img_path`` whose names
end in ``img_suffix``, case-sensitively. A missing folder, or one with no such
file, gives an empty dataset that fails much later (``need at least one array
to concatenate``) without naming the folder; a file ending in ``.PNG`` where
the suffix is ``.png`` is skipped without a word. :func:`check_image_folder`
names the folder and the files, and says what to do.
"""
from typing import Optional

from mmengine import fileio

SHOWN = 5  # files named in a message


class DataFaultError(ValueError):
    """A data file or folder that cannot serve as samples; the message names it."""


def check_image_folder(img_dir: str, img_suffix: str,
                       backend_args: Optional[dict] = None) -> int:
    """Check the folder a dataset lists its images from; returns how many it lists.

    Raises:
        DataFaultError: the folder is missing, holds no image ending in
            ``img_suffix``, or holds images whose suffix differs from it only
            in case (they would be skipped).
    """
    where = f'{img_dir} (the dataset\'s data_root joined with data_prefix.img_path)'
    if not img_dir or not fileio.isdir(img_dir, backend_args=backend_args):
        raise DataFaultError(f'The image folder {where} does not exist. Set data_root to '
                             'where the dataset is (e.g. --cfg-options '
                             'train_dataloader.dataset.data_root=DIR).')
    listed, other_case = 0, []
    for name in fileio.list_dir_or_file(img_dir, list_dir=False, recursive=True,
                                        backend_args=backend_args):
        if name.endswith(img_suffix):
            listed += 1
        elif name.lower().endswith(img_suffix.lower()):
            other_case.append(name)
    if other_case:
        raise DataFaultError(
            f'{len(other_case)} image(s) in {img_dir} end in another case than the '
            f'suffix {img_suffix!r}, and the dataset would skip them: '
            f'{", ".join(sorted(other_case)[:SHOWN])}{" ..." if len(other_case) > SHOWN else ""}. '
            f'Rename them to end in {img_suffix!r} (their labels alike), or set the '
            "dataset's img_suffix if they are the ones meant.")
    if not listed:
        raise DataFaultError(
            f'The dataset is empty: {where} holds no file ending in {img_suffix!r}. Check '
            "data_root and data_prefix, and the dataset's img_suffix.")
    return listed


def check_folder_of(dataset) -> int:
    """:func:`check_image_folder` for a built ``BaseSegDataset`` (its data_prefix
    holds data_root already)."""
    return check_image_folder(dataset.data_prefix.get('img_path') or '', dataset.img_suffix,
                              dataset.backend_args)
