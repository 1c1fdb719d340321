"""Process-group and model-wrapper facts, asked one way everywhere.

Reduce across processes only when a process group exists (STYLE.md): these
say whether one does, and unwrap a DDP-wrapped model.
"""
from typing import Tuple

import torch.distributed as dist
from mmengine.model import is_model_wrapper
from torch import nn


def group_open() -> bool:
    """Whether a process group is open (of any size)."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> Tuple[int, int]:
    """(rank, world size) of the open process group; (0, 1) without one."""
    if group_open():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def distributed() -> bool:
    """Whether there are other ranks to agree with (a group of more than one)."""
    return rank_and_world()[1] > 1


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a wrapper of mmengine's registry (DDP and friends);
    the model itself otherwise."""
    return model.module if is_model_wrapper(model) else model
