"""A checkpoint handed to ``--resume`` is untrusted input: check it before mmengine reads it.

The weights-only loader (:mod:`.loader`) keeps a checkpoint from running code
*while it is unpickled*. What it returns is still data that mmengine 0.10.7's
resume machinery acts on: it executes ``meta['config']``, deletes the files
that the message hub names, sets an attribute for every key of a scheduler's
state. :func:`check_resume_checkpoint` runs on the loaded dict before mmengine
or any hook sees it (:mod:`.resume_guard`) and checks it against what
mmengine's ``Runner.save_checkpoint`` and this project's ``CheckpointHook``
write. Every field, what reads it and what is accepted is listed once, in
``docs/security.md``. The optimizer and schedulers are checked in
:mod:`.optim_state_checks`; this project's own keys beside the code that writes
them (:func:`.rng_state.check_rng_states`, :func:`.run_files.check_run_id`).

:func:`check_resume_shapes` is the one check that needs the built model: the
checkpoint hook makes it when the resumed checkpoint reaches it.

A refusal raises :class:`UnsafeResumeError` naming the field.
"""
import math
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from .optim_state_checks import (check_optimizer, check_param_schedulers, optimizer_layout,
                                 scheduler_states)
from .rng_state import RNG_KEY, check_rng_states
from .run_files import RUN_KEY, check_run_id
from .schema import (Refusal, check_dict, check_int, check_plain, check_seed, check_str,
                     describe, is_number, refuse)

__all__ = ['UnsafeResumeError', 'check_resume_checkpoint', 'check_resume_shapes',
           'optimizer_layout', 'scheduler_states']

LOOP_STAGES = ('train', 'val', 'test')


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


# -------------------------------------------------------------------- tensors
def _tensor_dict(value, field: str) -> None:
    for key, tensor in check_dict(value, field).items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            refuse(f'{field}[{key!r}]', f'must be a tensor named by a string, got '
                   f'{describe(tensor)}')
    metadata = getattr(value, '_metadata', None)
    if metadata is not None:
        check_plain(check_dict(metadata, f'{field}._metadata'), f'{field}._metadata')


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
        if RUN_KEY in checkpoint:
            check_run_id(checkpoint[RUN_KEY])
    except Refusal as refusal:
        raise UnsafeResumeError(
            f'Refused to resume from {source}: {refusal.field} {refusal.problem}. A checkpoint '
            "is untrusted input, and on --resume mmengine acts on this field; this one is not "
            "what mmengine's and this project's checkpoint hooks write. Resume only checkpoints "
            'that your own training saved; to start a new run from its weights alone, use '
            'load_from=CHECKPOINT without --resume (then only its state_dict is read).') from None


def check_resume_shapes(ours: dict, theirs: dict, work_dir: str) -> None:
    """Resuming continues a run: every tensor must keep its shape.

    mmengine loads with ``strict=False``, so a tensor whose shape changed
    (the config's ``num_classes``, K or ``channels`` edited since) would be
    skipped with a warning and training would go on from its initialisation.

    Raises:
        ValueError: naming each tensor whose shape differs.
    """
    changed = [f'  {key}: {tuple(theirs[key].shape)} in the checkpoint, '
               f'{tuple(tensor.shape)} in this model'
               for key, tensor in ours.items()
               if key in theirs and getattr(theirs[key], 'shape', tensor.shape) != tensor.shape]
    if changed:
        raise ValueError(
            'Cannot resume: the model is not the one the checkpoint was saved from:\n'
            + '\n'.join(changed) + '\nResume with the config it was trained with (saved '
            f'in {work_dir}), or start a new run from its weights with load_from=CHECKPOINT '
            'and without --resume.')
