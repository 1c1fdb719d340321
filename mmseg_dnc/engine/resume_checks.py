"""A checkpoint handed to ``--resume`` is untrusted input: check it before mmengine reads it.

The weights-only loader (:mod:`mmseg_dnc.checkpoint`) keeps a checkpoint from
running code *while it is unpickled*. What it returns is still data that
mmengine 0.10.7's resume machinery interprets, and some of it is dangerous:
``meta['config']`` is executed as a Python config file, and the message hub's
``keep_ckpt_ids`` and ``best_ckpt`` name files that ``CheckpointHook`` deletes.
:func:`check_resume_checkpoint` runs on the loaded dict before mmengine or any
hook sees it (see :mod:`.resume_guard`) and checks it against what mmengine's
``Runner.save_checkpoint`` and this project's ``CheckpointHook`` write.

Every field mmengine 0.10.7 interprets on resume, and what happens to it here:

``Runner.resume``
  - ``meta['epoch']``, ``meta['iter']``: the loop counters. Ints >= 0.
  - ``meta['config']``: *executed* (``Config.fromstring(..., '.py')``) to read
    ``gpu_ids``. Neither mmengine (it writes ``meta['cfg']``) nor this project
    writes it: refused, whatever it holds.
  - ``meta['seed']``: re-seeds the run when it differs from the config's. An
    int in [0, 2**32) or None.
  - ``meta['dataset_meta']``: compared with the dataset's (a warning). Plain data.
  - ``message_hub``: ``log_scalars`` (each a ``HistoryBuffer``: exactly its
    ``max_length`` and two 1-D numeric histories), ``runtime_info`` (copied into
    the global message hub, where every hook reads it; plain data, and the keys
    below typed), ``resumed_keys`` (str -> bool). Required.
  - ``optimizer``: the optimizer wrapper's state: ``param_groups`` (as many as
    the optimizer has, each as many parameters; plain hyper-parameters),
    ``state`` (per parameter; each tensor the parameter's shape, a scalar, or a
    factored shape with 1s), ``base_param_settings`` (only if the wrapper has
    one: it adds a group the schedulers step), ``loss_scaler`` (numbers).
  - ``param_schedulers``: each loaded with ``__dict__.update``, so any key sets
    an attribute; ``zip`` drops extra or missing ones. As many as the config
    has, each with exactly the keys its scheduler saves, of the same types.
``Runner.load_checkpoint``
  - ``state_dict``: str -> tensor; ``module.`` prefixes stripped; its
    ``_metadata`` (module versions) plain data. Shapes are the
    ``CheckpointHook``'s check (``check_resume_shapes``).
  - the whole dict goes to every hook's ``after_load_checkpoint``: this
    project's ``torch_rng_state`` (one state per rank: uint8 vectors of
    torch's state sizes) and ``mmseg_dnc_run`` (32 hex digits); mmengine's
    ``EMAHook`` reads ``ema_state_dict`` (str -> tensor).
``runtime_info``, read by hooks after the resume
  - ``keep_ckpt_ids`` (``CheckpointHook.before_train`` deletes the files of the
    ids beyond ``max_keep_ckpts``, before anything is written): increasing ints
    >= 0, none past the checkpoint's own step. This project's hook deletes
    nothing before a new checkpoint is written, and then only files that this
    run wrote (:mod:`.run_files`); others are kept, with a warning.
  - ``best_ckpt``, ``best_ckpt_<metric>`` (the previous best, deleted when a new
    best is written; published by ``published_keys``): strings; deleted or
    published only when this run wrote them.
  - ``best_score``, ``best_score_<metric>``: compared with each new metric. Numbers, not NaN.
  - ``eta`` (the logger formats it): a number >= 0. ``loop_stage``: 'train',
    'val' or 'test'. ``epoch``, ``iter``, ``max_epochs``, ``max_iters``: ints
    >= 0 (``RuntimeInfoHook`` overwrites them). ``cfg``, ``experiment_name``,
    ``mmengine_version``, ``last_ckpt``: strings, carried into the next
    checkpoints, never executed by resume (``cfg`` is executed by mmengine's
    ``BaseInferencer`` when given weights without a config, which
    :mod:`.resume_guard` refuses). ``seed``: as ``meta['seed']``.

Other top-level and ``meta`` keys are read by nothing on resume and are
ignored. A refusal raises :class:`UnsafeResumeError` naming the field.
"""
import math
import re
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from .optim_state_checks import (check_optimizer, check_param_schedulers, optimizer_layout,
                                 scheduler_states)
from .rng_state import RNG_KEY
from .run_files import RUN_KEY
from .schema import (Refusal, check_dict, check_int, check_plain, check_seed, check_str,
                     describe, is_number, refuse)

__all__ = ['UnsafeResumeError', 'check_resume_checkpoint', 'optimizer_layout',
           'scheduler_states']

LOOP_STAGES = ('train', 'val', 'test')
_HEX32 = re.compile(r'[0-9a-f]{32}')


class UnsafeResumeError(ValueError):
    """A checkpoint holds something that resuming would misuse."""


# ----------------------------------------------------------------------- meta
def check_meta(meta) -> int:
    """``meta``; returns the checkpoint's step (the larger of epoch and iter)."""
    check_dict(meta, "meta")
    if 'config' in meta:
        refuse("meta['config']", 'is present: mmengine executes it as a Python config file '
               'on resume (Config.fromstring). Neither mmengine (it writes meta["cfg"]) nor '
               'this project writes it, so it was put there by someone else')
    epoch = check_int(meta.get('epoch'), "meta['epoch']")
    step = max(epoch, check_int(meta.get('iter'), "meta['iter']"))
    check_seed(meta.get('seed'), "meta['seed']")
    for key in ('cfg', 'experiment_name', 'time', 'mmengine_version'):
        if key in meta:
            check_str(meta[key], f'meta[{key!r}]')
    if meta.get('dataset_meta') is not None:
        field = "meta['dataset_meta']"
        check_plain(check_dict(meta['dataset_meta'], field), field)
    return step


# ---------------------------------------------------------------- message hub
def _history_buffer(value, field: str) -> None:
    if type(value) is not HistoryBuffer:
        refuse(field, f'must be a HistoryBuffer, got {describe(value)}')
    attributes = vars(value)
    expected = {'max_length', '_log_history', '_count_history'}
    # its __getstate__ adds statistics_methods (name -> HistoryBuffer method)
    if not expected <= set(attributes) <= expected | {'statistics_methods'}:
        refuse(field, f'has attributes {sorted(attributes)}, a HistoryBuffer has '
               f'{sorted(expected)} (and statistics_methods)')
    own = {id(method) for method in HistoryBuffer._statistics_methods.values()}
    for name, method in check_dict(attributes.get('statistics_methods', {}),
                                   f'{field}.statistics_methods').items():
        if not (isinstance(name, str) and id(method) in own):
            refuse(f'{field}.statistics_methods[{name!r}]', f'must be a HistoryBuffer '
                   f'statistics method, got {describe(method)}')
    length = check_int(attributes['max_length'], f'{field}.max_length', minimum=1)
    logs, counts = attributes['_log_history'], attributes['_count_history']
    for name, array in (('_log_history', logs), ('_count_history', counts)):
        if not (isinstance(array, np.ndarray) and array.ndim == 1
                and array.dtype.kind in 'biuf'):
            refuse(f'{field}.{name}', f'must be a 1-D numeric array, got {describe(array)}')
    if len(logs) != len(counts) or len(logs) > length:
        refuse(field, f'holds {len(logs)} values and {len(counts)} counts for max_length '
               f'{length}')


def _keep_ckpt_ids(value, step: int) -> None:
    field = "message_hub['runtime_info']['keep_ckpt_ids']"
    if not isinstance(value, (list, tuple)):
        refuse(field, f'must be a list of checkpoint steps, got {describe(value)}')
    ids = [check_int(v, f'{field}[{i}]') for i, v in enumerate(value)]
    if any(b <= a for a, b in zip(ids, ids[1:])):
        refuse(field, f'must increase, got {ids}')
    if ids and ids[-1] > step:
        refuse(field, f'names step {ids[-1]}, after the checkpoint\'s own step {step}: '
               'a run lists only checkpoints it wrote before this one')


def _runtime_value(key: str, value, step: int) -> None:
    field = f'message_hub[\'runtime_info\'][{key!r}]'
    if key == 'keep_ckpt_ids':
        _keep_ckpt_ids(value, step)
    elif key in ('cfg', 'experiment_name', 'mmengine_version', 'last_ckpt') \
            or key.startswith('best_ckpt'):
        check_str(value, field)
    elif key.startswith('best_score'):
        if not is_number(value) or math.isnan(value):
            refuse(field, f'must be a number, got {describe(value)}')
    elif key == 'eta':
        if not is_number(value) or not value >= 0:
            refuse(field, f'must be a number >= 0, got {describe(value)}')
    elif key == 'loop_stage':
        if value not in LOOP_STAGES:
            refuse(field, f'must be one of {LOOP_STAGES}, got {describe(value)}')
    elif key in ('epoch', 'iter', 'max_epochs', 'max_iters'):
        check_int(value, field)
    elif key == 'seed':
        check_seed(value, field)
    else:
        check_plain(value, field)


def check_message_hub(hub, step: int) -> None:
    """``message_hub``: what ``MessageHub.load_state_dict`` and the hooks read."""
    check_dict(hub, 'message_hub')
    for key in ('log_scalars', 'runtime_info', 'resumed_keys'):
        check_dict(hub.get(key), f'message_hub[{key!r}]')
    for key, value in hub['log_scalars'].items():
        key = check_str(key, "a message_hub['log_scalars'] key")
        _history_buffer(value, f"message_hub['log_scalars'][{key!r}]")
    for key, value in hub['runtime_info'].items():
        _runtime_value(check_str(key, "a message_hub['runtime_info'] key"), value, step)
    for key, value in hub['resumed_keys'].items():
        if not (isinstance(key, str) and isinstance(value, bool)):
            refuse("message_hub['resumed_keys']", f'must map names to bools, got {key!r}: '
                   f'{describe(value)}')


# ------------------------------------------------------------ tensors and RNG
def _tensor_dict(value, field: str) -> None:
    for key, tensor in check_dict(value, field).items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            refuse(f'{field}[{key!r}]', f'must be a tensor named by a string, got '
                   f'{describe(tensor)}')
    metadata = getattr(value, '_metadata', None)
    if metadata is not None:
        check_plain(check_dict(metadata, f'{field}._metadata'), f'{field}._metadata')


def check_rng_states(states) -> None:
    """This project's ``torch_rng_state``: per rank, torch's generator states."""
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


# ---------------------------------------------------------------------- entry
def check_resume_checkpoint(checkpoint, source: str, optimizer: Optional[Dict[str, dict]] = None,
                            schedulers: Any = None) -> None:
    """Refuse a checkpoint that mmengine's resume would misuse.

    Args:
        checkpoint: the loaded checkpoint.
        source (str): where it was loaded from, for the message.
        optimizer: :func:`optimizer_layout` of the run's optimizer wrapper,
            None to leave ``optimizer`` unchecked (it will not be loaded).
        schedulers: :func:`scheduler_states` of the run's schedulers, None to
            leave ``param_schedulers`` unchecked (they will not be loaded).

    Raises:
        UnsafeResumeError: naming the field, what is wrong and what to do.
    """
    try:
        check_dict(checkpoint, 'the checkpoint')
        for key in ('meta', 'message_hub'):
            if key not in checkpoint:
                refuse(f'checkpoint[{key!r}]', 'is missing: this is not a checkpoint saved '
                       'by training (mmengine saves meta and message_hub with every one)')
        step = check_meta(checkpoint['meta'])
        check_message_hub(checkpoint['message_hub'], step)
        _tensor_dict(checkpoint.get('state_dict'), "checkpoint['state_dict']")
        if 'ema_state_dict' in checkpoint:
            _tensor_dict(checkpoint['ema_state_dict'], "checkpoint['ema_state_dict']")
        if optimizer is not None and 'optimizer' in checkpoint:
            check_optimizer(checkpoint['optimizer'], optimizer)
        if schedulers is not None and 'param_schedulers' in checkpoint:
            check_param_schedulers(checkpoint['param_schedulers'], schedulers)
        if RNG_KEY in checkpoint:
            check_rng_states(checkpoint[RNG_KEY])
        if RUN_KEY in checkpoint and not (isinstance(checkpoint[RUN_KEY], str)
                                          and _HEX32.fullmatch(checkpoint[RUN_KEY])):
            refuse(f'checkpoint[{RUN_KEY!r}]', f'must be 32 hex digits, got '
                   f'{describe(checkpoint[RUN_KEY])}')
    except Refusal as refusal:
        raise UnsafeResumeError(
            f'Refused to resume from {source}: {refusal.field} {refusal.problem}. A checkpoint '
            "is untrusted input, and on --resume mmengine acts on this field; this one is not "
            "what mmengine's and this project's checkpoint hooks write. Resume only checkpoints "
            'that your own training saved; to start a new run from its weights alone, use '
            'load_from=CHECKPOINT without --resume (then only its state_dict is read).') from None
