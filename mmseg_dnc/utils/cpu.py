"""Run mmseg configs on machines without CUDA, one process or several.

mmseg's configs are written for GPUs: SyncBN, the nccl backend, a DDP
wrapper given ``device_ids=[LOCAL_RANK]``, and ``AmpOptimWrapper`` for
``--amp``. On a CPU each of those fails, and mmengine's ``pytorch`` launcher
calls ``torch.cuda.set_device`` even on a CPU build. :func:`adapt_to_cpu`
rewrites a config for the CPU (plain BN, gloo, ``device_ids=None``, bfloat16
autocast for ``--amp``) and, under a launcher, opens the gloo process group
itself, so mmengine finds it open and skips its CUDA-only set-up.
"""
import os
from typing import Any

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

from .dist import group_open


def replace_sync_bn(node: Any) -> Any:
    """Turn every ``type='SyncBN'`` in a (nested) config into ``'BN'``, in place."""
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
        for value in node.values():
            replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            replace_sync_bn(value)
    return node


def amp_on_cpu(cfg: Config) -> None:
    """``optim_wrapper.type='AmpOptimWrapper'`` -> ``'CPUAmpOptimWrapper'``, in place."""
    wrapper = cfg.get('optim_wrapper')
    if not (isinstance(wrapper, dict) and wrapper.get('type') == 'AmpOptimWrapper'):
        return
    dtype = wrapper.get('dtype')
    if dtype not in (None, 'bfloat16'):
        raise ValueError(
            f'optim_wrapper.dtype={dtype!r}: float16 autocast needs a GPU, and this '
            "machine has none. On the CPU mixed precision is bfloat16: set "
            "optim_wrapper.dtype='bfloat16', or train without --amp.")
    dropped = [f'{key}={wrapper.pop(key)!r}' for key in ('loss_scale', 'dtype')
               if key in wrapper]
    wrapper['type'] = 'CPUAmpOptimWrapper'
    print_log('CPU run: AmpOptimWrapper needs a GPU; mixed precision runs as bfloat16 '
              'autocast (CPUAmpOptimWrapper), which needs no loss scaling'
              + (f' ({", ".join(dropped)} dropped).' if dropped else '.'), logger='current')


def adapt_to_cpu(cfg: Config, launcher: str = 'none') -> Config:
    """Rewrite ``cfg`` for CPU training when CUDA is not available.

    Does nothing when CUDA is available. Otherwise: SyncBN -> BN, the gloo
    backend, ``AmpOptimWrapper`` -> ``CPUAmpOptimWrapper`` (bfloat16), a DDP
    wrapper without device ids, and with ``launcher='pytorch'`` (torchrun)
    the gloo process group initialised from the environment.
    """
    if torch.cuda.is_available():
        return cfg
    if 'model' in cfg:
        replace_sync_bn(cfg.model)
    amp_on_cpu(cfg)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if launcher == 'none':
        return cfg
    wrapper = cfg.get('model_wrapper_cfg') or {}
    wrapper = dict(wrapper, device_ids=None)
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    cfg.model_wrapper_cfg = wrapper
    if launcher != 'pytorch':
        raise NotImplementedError(
            f"launcher='{launcher}' on a machine without CUDA: use torchrun "
            "(--launcher pytorch), which this project supports on CPU.")
    open_gloo_group()
    return cfg


def open_gloo_group() -> None:
    """Open the gloo process group from torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT), unless one is open: mmengine then
    finds it open and skips its CUDA-only set-up."""
    if group_open():
        return
    dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']))
    print_log(f'CPU run: gloo process group {dist.get_rank()}/{dist.get_world_size()}, '
              'SyncBN -> BN.', logger='current')
