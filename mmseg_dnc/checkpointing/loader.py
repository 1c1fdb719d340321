"""Load checkpoints with torch's weights-only unpickler, on every mmengine path.

A checkpoint is untrusted input: a pickle can run any code. torch >= 2.6 loads
with ``weights_only=True``, which mmengine 0.10.7's own checkpoints fail: their
message hub holds ``HistoryBuffer`` objects (with numpy arrays and scalars, and
references to ``HistoryBuffer.min`` and friends, pickled as ``getattr``). So
resume, ``load_from``, testing and ``mmseg.apis.init_model`` break.

This module replaces mmengine's loader for local files (the ``''`` scheme of
``CheckpointLoader``, which all of those go through) with one that keeps
``weights_only=True`` and allows exactly the globals those checkpoints need,
only while loading. ``getattr`` in particular is allowed only as
``getattr(HistoryBuffer, <one of its statistics methods>)``. Anything else is
refused with :class:`UntrustedCheckpointError`; a truncated or corrupt file
raises :class:`CorruptCheckpointError`; one whose ``state_dict`` is not a dict
(a list, None, a string), :class:`MalformedCheckpointError`, before mmengine
reads it. Nothing is registered globally in torch.
"""
import os.path as osp
import pickle
import re
import zipfile
from typing import Any

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .schema import describe
from .takeovers import enabled


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allow-list."""


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is truncated or not a PyTorch checkpoint at all."""


class MalformedCheckpointError(ValueError):
    """A checkpoint file loads, but holds no weights by name (its ``state_dict``
    is a list, None, a string...)."""


def _history_buffer_getattr(obj: Any, name: str):
    """``getattr`` as mmengine checkpoints use it, and for nothing else."""
    # the four built-in statistics (filled into _statistics_methods only when
    # a first HistoryBuffer is made) and any registered with register_statistics
    builtin = ('min', 'max', 'current', 'mean')
    if obj is HistoryBuffer and (name in builtin or name in HistoryBuffer._statistics_methods):
        return getattr(HistoryBuffer, name)
    raise UntrustedCheckpointError(
        f'getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) is not '
        'a HistoryBuffer statistics method')


def _numpy_globals():
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    allowed = [np.ndarray, np.dtype]
    # numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*: accept both names
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    # numpy 2.x pickles some dtypes through their DType classes
    allowed += [type(np.dtype(t))
                for t in (np.float64, np.float32, np.int64, np.int32, np.bool_, np.uint8)]
    return allowed


SAFE_GLOBALS = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
                *_numpy_globals()]

_DISALLOWED = re.compile(r'(Unsupported global|GLOBAL|unrecognized function|'
                         r'getattr\(|is not a HistoryBuffer)[^\n]*')


def load_checkpoint_file(filename: str, map_location=None, mmap: bool = False) -> Any:
    """``torch.load(filename, weights_only=True)`` with mmengine's globals allowed.

    ``mmap=True`` maps the file instead of reading it: tensors are read when used.

    Raises:
        FileNotFoundError: no such file (or an empty name).
        IsADirectoryError: ``filename`` is a directory.
        UntrustedCheckpointError: the file holds another pickled object.
        CorruptCheckpointError: the file is truncated, empty or not a checkpoint.
        MalformedCheckpointError: its ``state_dict`` (or the file itself) is
            not a dict (:func:`state_dict_of`).
    """
    filename = osp.expanduser(filename)
    if not filename:
        raise FileNotFoundError(
            'No checkpoint file given (the name is empty). If it came from a '
            "work dir's last_checkpoint file, that file is empty: write the path of "
            'the checkpoint to resume into it, or name it with load_from=CHECKPOINT.')
    if osp.isdir(filename):
        raise IsADirectoryError(
            f'{filename} is a directory, not a checkpoint file: name the .pth file '
            'in it to load (e.g. the one its last_checkpoint file names).')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if osp.getsize(filename) == 0:
        raise CorruptCheckpointError(_corrupt_message(filename, 'it is empty (0 bytes)', cut=False))
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(filename, map_location=map_location, weights_only=True,
                                    mmap=mmap)
    except pickle.UnpicklingError as error:
        found = _DISALLOWED.search(str(error))
        if found is None:
            raise CorruptCheckpointError(_corrupt_message(filename, _cause(error))) from None
        raise UntrustedCheckpointError(
            f'Refused to load {filename}: it holds a pickled object that is not '
            f'plain weights ({found.group(0).strip()}). Checkpoints are loaded '
            "with torch's weights-only unpickler because unpickling can run "
            'arbitrary code; only tensors, containers and the objects of '
            "mmengine's own checkpoints are accepted. If you trust where this "
            'file comes from, re-save just its weights once, e.g. '
            "torch.save({'state_dict': torch.load(f, weights_only=False)"
            "['state_dict']}, 'clean.pth'), and load clean.pth.") from None
    except (OSError, MemoryError):
        raise  # the file system's problem, not the file's
    except Exception as error:  # noqa: BLE001  (the legacy loader fails in many ways)
        raise CorruptCheckpointError(_corrupt_message(filename, _cause(error))) from None
    state_dict_of(checkpoint, filename)  # before mmengine reads it (load_from, test, resume)
    return checkpoint


def load_lazily(filename: str):
    """:func:`load_checkpoint_file` on the CPU, memory-mapped when the file is
    a zip (torch's format since 1.6): a glance at a few keys of a large
    checkpoint reads only those."""
    filename = osp.expanduser(filename)
    return load_checkpoint_file(filename, map_location='cpu', mmap=zipfile.is_zipfile(filename))


def state_dict_of(checkpoint, source: str) -> dict:
    """The weights of a loaded checkpoint as mmengine reads them: its
    ``'state_dict'``, or the checkpoint itself when it has none (bare weights).

    Raises:
        MalformedCheckpointError: that is not a dict (mmengine would fail on it
            with a bare AttributeError), naming the field and what it holds.
    """
    need = 'a dict of tensors by parameter name'
    if not isinstance(checkpoint, dict):
        field, weights = 'the checkpoint', checkpoint
        need = f"{need}, or a dict holding one under 'state_dict'"
    elif 'state_dict' in checkpoint:
        field, weights = "checkpoint['state_dict']", checkpoint['state_dict']
    else:
        return checkpoint
    if isinstance(weights, dict):
        return weights
    raise MalformedCheckpointError(
        f'Refused to load {source}: {field} must be {need} (what training saves), got '
        f'{describe(weights)}. It is not a model checkpoint, or '
        'it was edited; load one that training saved, or re-save the weights once as '
        "torch.save({'state_dict': model.state_dict()}, 'clean.pth').")


def _cause(error: Exception) -> str:
    """``Type: first line of the message`` (an error's message may be empty)."""
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[0]}' if lines else type(error).__name__


def _corrupt_message(filename: str, why: str, cut: bool = True) -> str:
    what = f'it is truncated or corrupt ({why})' if cut else why
    return (f'{filename} is not a readable PyTorch checkpoint: {what}. A file '
            'cut short by a killed run is unusable; resume from an earlier checkpoint: '
            'tools/train.py CONFIG --resume --cfg-options load_from=WORK_DIR/iter_N.pth')


if enabled('checkpoint_loader'):
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
