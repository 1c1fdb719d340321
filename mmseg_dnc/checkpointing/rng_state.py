"""torch's random generators, saved with a checkpoint and restored on resume.

mmengine resumes the data stream exactly: it re-seeds, then draws and drops
the batches already trained on, which replays the sampler and the
augmentations (numpy and ``random``) in the same order. What it does not
replay are the model's own draws from torch's generator: dropout, drop-path,
the sub-centroid memory's sampling. Without them a resumed run goes on with
other random masks than the run it continues. These helpers capture and
restore torch's CPU and CUDA generator states; ``SafeCheckpointHook`` keeps
one per rank in the checkpoint (plain uint8 tensors, loadable weights-only):
the ranks' generators part ways as soon as their data differ (the memory's
``randperm`` draws as many numbers as a rank has pixels).

On ``--resume`` :func:`check_rng_states` checks what a checkpoint holds under
:data:`RNG_KEY` before anything restores it (:mod:`.resume_checks`).
"""
from typing import Dict, List

import torch

from .schema import check_dict, describe, refuse

RNG_KEY = 'torch_rng_state'


def capture_rng_state() -> Dict[str, object]:
    """torch's generator states now: ``{'cpu': uint8 tensor, 'cuda': [...]}``."""
    state = {'cpu': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, object]) -> List[str]:
    """Set torch's generators to ``state``; returns what was restored.

    Raises:
        ValueError: the state is not what :func:`capture_rng_state` makes.
    """
    cpu = state.get('cpu') if isinstance(state, dict) else None
    if not (isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8):
        raise ValueError(f'not a torch generator state: {type(state).__name__} '
                         f'with keys {sorted(state) if isinstance(state, dict) else "-"}')
    torch.set_rng_state(cpu)
    restored = ['cpu']
    cuda = state.get('cuda')
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
        restored.append(f'cuda x{len(cuda)}')
    return restored


def check_rng_states(states) -> None:
    """This project's ``torch_rng_state``: per rank, torch's generator states.

    Raises:
        Refusal: naming the rank and the key that is not what
            :func:`capture_rng_state` makes.
    """
    field = f'checkpoint[{RNG_KEY!r}]'
    if not isinstance(states, list):
        refuse(field, f'must be a list of per-rank generator states, got {describe(states)}')
    cpu_size = torch.get_rng_state().numel()
    for rank, state in enumerate(states):
        where = f'{field}[{rank}]'
        if set(check_dict(state, where)) - {'cpu', 'cuda'}:
            refuse(where, f'has keys {sorted(map(str, state))}; it keeps only cpu and cuda')
        cpu = state.get('cpu')
        if not (isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8
                and tuple(cpu.shape) == (cpu_size,)):
            refuse(f"{where}['cpu']", f'must be a torch.uint8 tensor of shape ({cpu_size},), '
                   f"torch's CPU generator state, got {describe(cpu)}")
        cuda = state.get('cuda', [])
        if not (isinstance(cuda, (list, tuple)) and all(
                isinstance(s, torch.Tensor) and s.dtype == torch.uint8 and s.ndim == 1
                for s in cuda)):
            refuse(f"{where}['cuda']", f'must be a list of uint8 vectors, got {describe(cuda)}')
