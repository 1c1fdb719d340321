"""Small checks of untrusted plain data, each naming the field it refuses.

A refusal raises :class:`Refusal` (field, problem); the caller turns it into
the error its user sees (:func:`.resume_checks.check_resume_checkpoint`);
:func:`describe` also words the loader's refusals (:mod:`.loader`).
"""
import numbers

import numpy as np
import torch

MAX_DEPTH = 32


class Refusal(Exception):
    """``field`` is not what it must be: ``problem``."""

    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def refuse(field: str, problem: str):
    raise Refusal(field, problem)


def is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    return (isinstance(value, (numbers.Real, np.floating, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def describe(value) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f'a {value.dtype} {type(value).__name__} of shape {tuple(value.shape)}'
    text = repr(value)
    return f'{type(value).__name__} {text[:60] + "..." if len(text) > 60 else text}'


def check_int(value, field: str, minimum: int = 0) -> int:
    """An int (not a bool) >= ``minimum``."""
    if not is_int(value) or value < minimum:
        refuse(field, f'must be an int >= {minimum}, got {describe(value)}')
    return int(value)


def check_str(value, field: str) -> str:
    if not isinstance(value, str):
        refuse(field, f'must be a string, got {describe(value)}')
    return value


def check_dict(value, field: str) -> dict:
    if not isinstance(value, dict):
        refuse(field, f'must be a dict, got {describe(value)}')
    return value


def check_plain(value, field: str, depth: int = 0) -> None:
    """Containers of numbers, strings, arrays and tensors, nothing else."""
    if depth > MAX_DEPTH:
        refuse(field, f'is nested more than {MAX_DEPTH} levels deep')
    if isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, f'{field} (a key)', depth + 1)
            check_plain(item, f'{field}[{key!r}]', depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            check_plain(item, f'{field}[{i}]', depth + 1)
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            refuse(field, 'is an array of Python objects')
    elif not isinstance(value, (type(None), bool, numbers.Number, str, bytes, np.generic,
                                torch.Tensor, torch.dtype, torch.device)):
        refuse(field, f'must be plain data, got a {type(value).__name__}')


def check_seed(value, field: str) -> None:
    """None, or a seed numpy accepts."""
    if value is not None and not (is_int(value) and 0 <= value < 2**32):
        refuse(field, f'must be None or an int in [0, 2**32), got {describe(value)}')
