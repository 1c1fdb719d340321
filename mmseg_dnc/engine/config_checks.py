"""Checks on a whole config, before anything is built.

mmseg takes ``num_classes`` from each head's config and the class list from
each dataset's, and never compares them: a 150-class head on 19-class data
trains without a word (and evaluates against the wrong class list). The
tools call :func:`check_num_classes` right after reading the config (the
evaluating tools also check the checkpoint: :mod:`.checkpoint_fit`), and
:func:`check_dataset_folders` on the datasets they will load, so that a
missing or empty image folder is named before a model is built.
"""
import inspect
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from mmseg_dnc.datasets import CamVidDataset, check_image_folder

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _heads(model: dict) -> Iterator[Tuple[str, dict]]:
    for key in ('decode_head', 'auxiliary_head'):
        heads = model.get(key)
        if isinstance(heads, dict):
            yield f'model.{key}', heads
        elif isinstance(heads, (list, tuple)):  # e.g. CascadeEncoderDecoder
            for i, head in enumerate(heads):
                yield f'model.{key}[{i}]', head


def _datasets(dataset, where: str) -> Iterator[Tuple[str, dict]]:
    """The datasets that hold samples, inside Repeat/Concat/MultiImageMix wrappers."""
    if not isinstance(dataset, dict):
        return
    if isinstance(dataset.get('datasets'), (list, tuple)):
        for i, inner in enumerate(dataset['datasets']):
            yield from _datasets(inner, f'{where}.datasets[{i}]')
    elif isinstance(dataset.get('dataset'), dict):
        yield from _datasets(dataset['dataset'], f'{where}.dataset')
    else:
        yield where, dataset


def dataset_num_classes(dataset: dict) -> Optional[int]:
    """Number of classes of a dataset config: its ``metainfo.classes`` or its
    class's ``METAINFO``; None when the type is unknown here."""
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        dataset_type = dataset.get('type')
        cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
        classes = getattr(cls, 'METAINFO', {}).get('classes')
    return None if classes is None else len(classes)


def num_classes_in(cfg) -> List[Tuple[str, int]]:
    """Every place of ``cfg`` that fixes the number of classes, with its value."""
    found = [(f'{where}.num_classes', head['num_classes'])
             for where, head in _heads(cfg.get('model') or {})
             if isinstance(head, dict) and 'num_classes' in head]
    for loader in LOADERS:
        for where, dataset in _datasets((cfg.get(loader) or {}).get('dataset'),
                                        f'{loader}.dataset'):
            count = dataset_num_classes(dataset)
            if count is not None:
                name = getattr(dataset.get('type'), '__name__', dataset.get('type'))
                found.append((f'{where} ({name})', count))
    return found


def check_num_classes(cfg) -> None:
    """Raise ValueError naming every place when they disagree on the number
    of classes, and what to set."""
    found = num_classes_in(cfg)
    if len({count for _, count in found}) <= 1:
        return
    listing = '\n'.join(f'  {where}: {count}' for where, count in found)
    from_data = {count for where, count in found if not where.startswith('model.')}
    if len(from_data) == 1:
        count = from_data.pop()
        wrong = [where for where, n in found if n != count]
        fix = (f'The datasets have {count} classes: set '
               + ' '.join(f'{where}={count}' for where in wrong)
               + ' (in the config or with --cfg-options).')
    else:
        fix = ('The datasets disagree among themselves: give them the same class '
               "list (their metainfo=dict(classes=...)), then the heads its length.")
    raise ValueError(f'num_classes disagrees across the config:\n{listing}\n{fix}')


# the datasets whose samples are the files of data_root/img_path ending in img_suffix
_FOLDER_LISTINGS = (BaseSegDataset.load_data_list, CamVidDataset.load_data_list)


def _img_suffix(cls, dataset: dict) -> str:
    if 'img_suffix' in dataset:
        return dataset['img_suffix']
    for klass in cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get('img_suffix')
        if parameter is not None:
            return parameter.default
    return '.jpg'


def check_dataset_folders(cfg, loaders: Sequence[str]) -> None:
    """The image folder of every dataset of ``loaders`` that mmseg lists from a
    folder (no ``ann_file``): it exists and holds images of the dataset's
    suffix, none of them in another case
    (:func:`mmseg_dnc.datasets.check_image_folder`).

    Raises:
        DataFaultError: naming the folder (or the files) and the fix.
    """
    for loader in loaders:
        for _, dataset in _datasets((cfg.get(loader) or {}).get('dataset'), loader):
            kind = dataset.get('type')
            cls = DATASETS.get(kind) if isinstance(kind, str) else kind
            if not (isinstance(cls, type) and issubclass(cls, BaseSegDataset)
                    and cls.load_data_list in _FOLDER_LISTINGS):
                continue
            root = dataset.get('data_root') or ''
            ann_file = dataset.get('ann_file') or ''
            if ann_file and not osp.isdir(osp.join(root, ann_file)):
                continue
            prefix = (dataset.get('data_prefix') or {}).get('img_path') or ''
            img_dir = prefix if osp.isabs(prefix) or not root else osp.join(root, prefix)
            check_image_folder(img_dir, _img_suffix(cls, dataset), dataset.get('backend_args'))
