"""Mixed precision on a CPU: ``--amp`` without a GPU.

mmengine's ``AmpOptimWrapper`` refuses to start without CUDA (or NPU, MLU,
MUSA). On the CPU, autocast runs in bfloat16, which has float32's exponent
range and so needs no loss scaling. :func:`mmseg_dnc.utils.adapt_to_cpu`
swaps ``AmpOptimWrapper`` for this wrapper when there is no CUDA, saying so.
"""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under CPU bfloat16 autocast.

    Args:
        dtype (str): only ``'bfloat16'``: float16 autocast is for GPUs.
        **kwargs: ``OptimWrapper``'s (optimizer, clip_grad, accumulative_counts).
    """

    def __init__(self, dtype: str = 'bfloat16', **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'CPUAmpOptimWrapper(dtype={dtype!r}): mixed precision on the '
                             "CPU is bfloat16; set dtype='bfloat16' or leave it out.")
        super().__init__(**kwargs)

    @contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast('cpu', dtype=torch.bfloat16):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        # a checkpoint of AmpOptimWrapper (GPU) also holds its loss scaler's state
        state_dict = {k: v for k, v in state_dict.items() if k != 'loss_scaler'}
        super().load_state_dict(state_dict)
