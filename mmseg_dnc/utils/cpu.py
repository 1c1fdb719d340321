"""Run mmseg configs on machines without CUDA, one process or several.

mmseg's configs are written for GPUs: SyncBN, the nccl backend, a DDP
wrapper given ``device_ids=[LOCAL_RANK]``, and ``AmpOptimWrapper`` for
``--amp``. On a CPU each of those fails, and mmengine's ``pytorch`` launcher
calls ``torch.cuda.set_device`` even on a CPU build. :func:`adapt_to_cpu`
rewrites a config for the CPU (plain BN, gloo, ``device_ids=None``, bfloat16
autocast for ``--amp``) and, under a launcher, opens the gloo process group
itself, so mmengine finds it open and skips its CUDA-only set-up.
"""
import ctypes
import os
import platform
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


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
KEEP_FREED = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 64 << 20}
MALLOC_ENV = 'MMSEG_DNC_MALLOC'


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep the memory a training step frees for the next.

    With its defaults, glibc hands large freed blocks back to the kernel (it
    trims the heap, and maps big blocks on their own), so every step asks for
    them again and the kernel zeroes each page anew: on 2 cores the main job's
    step took 35,000-58,000 page faults and 0.13-0.2 s of kernel time. Here,
    only blocks over 32 MiB (glibc's most) are mapped on their own, and the
    heap is not trimmed: ~60 faults a step, and steps 1.08x faster
    (``bench/cpu_malloc.py``, docs/cost.md). The process keeps its peak
    memory until it exits.

    Returns whether it was set: not off glibc, nor with ``MMSEG_DNC_MALLOC=glibc``
    in the environment (glibc's defaults kept).
    """
    choice = os.environ.get(MALLOC_ENV, 'keep')
    if choice not in ('keep', 'glibc'):
        raise ValueError(f'{MALLOC_ENV}={choice!r}: use keep (the default: freed memory '
                         "is kept for the next step) or glibc (glibc's own malloc settings)")
    if choice == 'glibc' or platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return all(mallopt(param, value) == 1 for param, value in KEEP_FREED.items())


def adapt_to_cpu(cfg: Config, launcher: str = 'none') -> Config:
    """Rewrite ``cfg`` for CPU training when CUDA is not available.

    Does nothing when CUDA is available. Otherwise: SyncBN -> BN, the gloo
    backend, ``AmpOptimWrapper`` -> ``CPUAmpOptimWrapper`` (bfloat16), a DDP
    wrapper without device ids, and with ``launcher='pytorch'`` (torchrun)
    the gloo process group initialised from the environment. The process's
    malloc keeps freed memory for the next step (:func:`keep_freed_memory`).
    """
    if torch.cuda.is_available():
        return cfg
    if keep_freed_memory():
        print_log('CPU run: malloc keeps the memory a step frees for the next one (no page '
                  f'faults per step; {MALLOC_ENV}=glibc keeps glibc\'s settings).',
                  logger='current')
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
