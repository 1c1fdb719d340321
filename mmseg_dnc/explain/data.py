"""Model and training-set loading shared by the explanation tools."""
import copy
from typing import Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from mmseg.apis import init_model
from mmseg.registry import DATASETS
from mmseg_dnc.checkpointing import check_checkpoint_fits
from mmseg_dnc.engine import check_num_classes
from mmseg_dnc.models import DNCDecodeHead
from mmseg_dnc.utils import replace_sync_bn


def load_dnc_model(config: Union[str, Config], checkpoint: str,
                   device: Optional[str] = None):
    """An mmseg segmentor with a DNC decode head, weights from ``checkpoint``
    (loaded weights-only), on the GPU when there is one."""
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(config)
    check_num_classes(cfg)
    check_checkpoint_fits(cfg, checkpoint)
    replace_sync_bn(cfg.model)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = init_model(cfg, checkpoint, device=device)
    if not isinstance(model.decode_head, DNCDecodeHead):
        raise TypeError(f'{cfg.filename}: the decode head is {type(model.decode_head).__name__}, '
                        'not a DNC head; explanations need sub-centroids.')
    return model, cfg


def _with_test_pipeline(dataset_cfg, pipeline):
    if 'pipeline' in dataset_cfg:
        dataset_cfg.pipeline = pipeline
    elif 'dataset' in dataset_cfg:  # RepeatDataset and friends
        _with_test_pipeline(dataset_cfg.dataset, pipeline)
    else:
        raise ValueError(f'cannot find the pipeline of dataset {dataset_cfg.get("type")}')
    return dataset_cfg


def training_set(cfg: Config, data_root: Optional[str] = None):
    """The config's training set, read with its test pipeline (no augmentation)."""
    dataset_cfg = _with_test_pipeline(copy.deepcopy(cfg.train_dataloader.dataset),
                                      cfg.test_dataloader.dataset.pipeline)
    if data_root:
        dataset_cfg.data_root = data_root
    return DATASETS.build(dataset_cfg)


def one_by_one(dataset, num_workers: int = 2) -> DataLoader:
    return DataLoader(dataset, batch_size=1, num_workers=num_workers,
                      collate_fn=pseudo_collate)


def read_rgb(path: str) -> np.ndarray:
    import mmcv
    return mmcv.imread(path, channel_order='rgb')
