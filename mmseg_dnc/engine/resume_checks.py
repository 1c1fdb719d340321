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
import numbers
import re
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.optim import OptimWrapper, OptimWrapperDict

from .rng_state import RNG_KEY
from .run_files import RUN_KEY

LOOP_STAGES = ('train', 'val', 'test')
_MAX_DEPTH = 32
_HEX32 = re.compile(r'[0-9a-f]{32}')


class UnsafeResumeError(ValueError):
    """A checkpoint holds something that resuming would misuse."""


class _Refusal(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(field, problem)
        self.field, self.problem = field, problem


def _refuse(field: str, problem: str):
    raise _Refusal(field, problem)


# ----------------------------------------------------------------- primitives
def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return (isinstance(value, (numbers.Real, np.floating, np.integer))
            and not isinstance(value, (bool, np.bool_)))


def _describe(value) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f'a {value.dtype} {type(value).__name__} of shape {tuple(value.shape)}'
    text = repr(value)
    return f'{type(value).__name__} {text[:60] + "..." if len(text) > 60 else text}'


def _int(value, field: str, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:
        _refuse(field, f'must be an int >= {minimum}, got {_describe(value)}')
    return int(value)


def _str(value, field: str) -> str:
    if not isinstance(value, str):
        _refuse(field, f'must be a string, got {_describe(value)}')
    return value


def _dict(value, field: str) -> dict:
    if not isinstance(value, dict):
        _refuse(field, f'must be a dict, got {_describe(value)}')
    return value


def _plain(value, field: str, depth: int = 0) -> None:
    """Containers of numbers, strings, arrays and tensors, nothing else."""
    if depth > _MAX_DEPTH:
        _refuse(field, f'is nested more than {_MAX_DEPTH} levels deep')
    if isinstance(value, dict):
        for key, item in value.items():
            _plain(key, f'{field} (a key)', depth + 1)
            _plain(item, f'{field}[{key!r}]', depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            _plain(item, f'{field}[{i}]', depth + 1)
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            _refuse(field, 'is an array of Python objects')
    elif not isinstance(value, (type(None), bool, numbers.Number, str, bytes, np.generic,
                                torch.Tensor, torch.dtype, torch.device)):
        _refuse(field, f'must be plain data, got a {type(value).__name__}')


def _seed(value, field: str) -> None:
    if value is not None and not (_is_int(value) and 0 <= value < 2**32):
        _refuse(field, f'must be None or an int in [0, 2**32), got {_describe(value)}')


# ----------------------------------------------------------------------- meta
def check_meta(meta) -> int:
    """``meta``; returns the checkpoint's step (the larger of epoch and iter)."""
    _dict(meta, "meta")
    if 'config' in meta:
        _refuse("meta['config']", 'is present: mmengine executes it as a Python config file '
                'on resume (Config.fromstring). Neither mmengine (it writes meta["cfg"]) nor '
                'this project writes it, so it was put there by someone else')
    epoch = _int(meta.get('epoch'), "meta['epoch']")
    step = max(epoch, _int(meta.get('iter'), "meta['iter']"))
    _seed(meta.get('seed'), "meta['seed']")
    for key in ('cfg', 'experiment_name', 'time', 'mmengine_version'):
        if key in meta:
            _str(meta[key], f'meta[{key!r}]')
    if meta.get('dataset_meta') is not None:
        _plain(_dict(meta['dataset_meta'], "meta['dataset_meta']"), "meta['dataset_meta']")
    return step


# ---------------------------------------------------------------- message hub
def _history_buffer(value, field: str) -> None:
    if type(value) is not HistoryBuffer:
        _refuse(field, f'must be a HistoryBuffer, got {_describe(value)}')
    attributes = vars(value)
    expected = {'max_length', '_log_history', '_count_history'}
    if set(attributes) != expected:
        _refuse(field, f'has attributes {sorted(attributes)}, a HistoryBuffer has '
                f'{sorted(expected)}')
    length = _int(attributes['max_length'], f'{field}.max_length', minimum=1)
    logs, counts = attributes['_log_history'], attributes['_count_history']
    for name, array in (('_log_history', logs), ('_count_history', counts)):
        if not (isinstance(array, np.ndarray) and array.ndim == 1
                and array.dtype.kind in 'biuf'):
            _refuse(f'{field}.{name}', f'must be a 1-D numeric array, got {_describe(array)}')
    if len(logs) != len(counts) or len(logs) > length:
        _refuse(field, f'holds {len(logs)} values and {len(counts)} counts for max_length '
                f'{length}')


def _keep_ckpt_ids(value, step: int) -> None:
    field = "message_hub['runtime_info']['keep_ckpt_ids']"
    if not isinstance(value, (list, tuple)):
        _refuse(field, f'must be a list of checkpoint steps, got {_describe(value)}')
    ids = [_int(v, f'{field}[{i}]') for i, v in enumerate(value)]
    if any(b <= a for a, b in zip(ids, ids[1:])):
        _refuse(field, f'must increase, got {ids}')
    if ids and ids[-1] > step:
        _refuse(field, f'names step {ids[-1]}, after the checkpoint\'s own step {step}: '
                'a run lists only checkpoints it wrote before this one')


def _runtime_value(key: str, value, step: int) -> None:
    field = f'message_hub[\'runtime_info\'][{key!r}]'
    if key == 'keep_ckpt_ids':
        _keep_ckpt_ids(value, step)
    elif key in ('cfg', 'experiment_name', 'mmengine_version', 'last_ckpt') \
            or key.startswith('best_ckpt'):
        _str(value, field)
    elif key.startswith('best_score'):
        if not _is_number(value) or math.isnan(value):
            _refuse(field, f'must be a number, got {_describe(value)}')
    elif key == 'eta':
        if not _is_number(value) or not value >= 0:
            _refuse(field, f'must be a number >= 0, got {_describe(value)}')
    elif key == 'loop_stage':
        if value not in LOOP_STAGES:
            _refuse(field, f'must be one of {LOOP_STAGES}, got {_describe(value)}')
    elif key in ('epoch', 'iter', 'max_epochs', 'max_iters'):
        _int(value, field)
    elif key == 'seed':
        _seed(value, field)
    else:
        _plain(value, field)


def check_message_hub(hub, step: int) -> None:
    """``message_hub``: what ``MessageHub.load_state_dict`` and the hooks read."""
    _dict(hub, 'message_hub')
    for key in ('log_scalars', 'runtime_info', 'resumed_keys'):
        _dict(hub.get(key), f'message_hub[{key!r}]')
    for key, value in hub['log_scalars'].items():
        _history_buffer(value, f"message_hub['log_scalars'][{_str(key, 'a log_scalars key')!r}]")
    for key, value in hub['runtime_info'].items():
        _runtime_value(_str(key, "a message_hub['runtime_info'] key"), value, step)
    for key, value in hub['resumed_keys'].items():
        if not (isinstance(key, str) and isinstance(value, bool)):
            _refuse("message_hub['resumed_keys']", f'must map names to bools, got {key!r}: '
                    f'{_describe(value)}')


# ------------------------------------------------------------------ optimizer
def optimizer_layout(wrapper) -> Optional[Dict[str, dict]]:
    """What a saved optimizer state must fit: per wrapper ('' for a single
    one), the parameter shapes of each group and whether it keeps
    ``base_param_settings``. None when the wrapper is not built."""
    if isinstance(wrapper, OptimWrapperDict):
        wrappers = dict(wrapper.items())
    elif isinstance(wrapper, OptimWrapper):
        wrappers = {'': wrapper}
    else:
        return None
    return {name: dict(groups=[[tuple(p.shape) for p in group['params']]
                               for group in w.optimizer.param_groups],
                       base_param_settings=getattr(w, 'base_param_settings', None) is not None)
            for name, w in wrappers.items()}


def _state_tensor_fits(shape: tuple, param: tuple) -> bool:
    """A parameter's own shape, a scalar, or a factored shape (dims of 1)."""
    if shape == param or int(np.prod(shape)) <= 1:
        return True
    return len(shape) == len(param) and all(s in (p, 1) for s, p in zip(shape, param))


def _hyper_parameter(value, field: str) -> None:
    ok = (value is None or isinstance(value, (bool, str, numbers.Number))
          or (isinstance(value, (list, tuple)) and all(_is_number(v) for v in value)))
    if not ok:
        _refuse(field, f'must be a number, bool, string or list of numbers, got '
                f'{_describe(value)}')


def _check_one_optimizer(theirs, layout: dict, field: str) -> None:
    _dict(theirs, field)
    extra = set(theirs) - {'state', 'param_groups', 'base_param_settings', 'loss_scaler'}
    if extra:
        _refuse(field, f'holds {sorted(map(str, extra))}, which an optimizer wrapper does not save')
    groups, state = theirs.get('param_groups'), _dict(theirs.get('state'), f"{field}['state']")
    if not isinstance(groups, list) or len(groups) != len(layout['groups']):
        _refuse(f"{field}['param_groups']", f'must be a list of {len(layout["groups"])} '
                f'group(s), as this optimizer has, got {_describe(groups)}')
    shapes = {}
    for g, (group, ours) in enumerate(zip(groups, layout['groups'])):
        where = f"{field}['param_groups'][{g}]"
        params = _dict(group, where).get('params')
        if not (isinstance(params, list) and all(_is_int(p) for p in params)
                and len(params) == len(ours)):
            _refuse(f"{where}['params']", f'must list {len(ours)} parameter ids, as this '
                    f'group has, got {_describe(params)}')
        shapes.update(zip(params, ours))
        for key, value in group.items():
            if key != 'params':
                _hyper_parameter(value, f'{where}[{key!r}]')
    if len(shapes) != sum(map(len, layout['groups'])):
        _refuse(f"{field}['param_groups']", 'list a parameter id twice')
    for pid, entry in state.items():
        where = f"{field}['state'][{pid!r}]"
        if pid not in shapes:
            _refuse(where, 'is the state of a parameter that no group lists')
        for name, value in _dict(entry, where).items():
            if isinstance(value, torch.Tensor):
                if not _state_tensor_fits(tuple(value.shape), shapes[pid]):
                    _refuse(f'{where}[{name!r}]', f'is {_describe(value)}, its parameter\'s '
                            f'shape is {shapes[pid]}')
            else:
                _hyper_parameter(value, f'{where}[{name!r}]')
    if 'base_param_settings' in theirs:
        settings = theirs['base_param_settings']
        if not layout['base_param_settings']:
            _refuse(f"{field}['base_param_settings']", 'is present, and this optimizer '
                    'wrapper keeps none: it would add a parameter group for the schedulers')
        for key, value in _dict(settings, f"{field}['base_param_settings']").items():
            if not (key == 'params' and value == []):
                _hyper_parameter(value, f"{field}['base_param_settings'][{key!r}]")
    for key, value in _dict(theirs.get('loss_scaler', {}), f"{field}['loss_scaler']").items():
        if not _is_number(value):
            _refuse(f"{field}['loss_scaler'][{key!r}]", f'must be a number, got {_describe(value)}')


def check_optimizer(theirs, layout: Dict[str, dict]) -> None:
    """``optimizer`` against the built optimizer wrapper (:func:`optimizer_layout`)."""
    if list(layout) == ['']:
        _check_one_optimizer(theirs, layout[''], "checkpoint['optimizer']")
        return
    _dict(theirs, "checkpoint['optimizer']")
    if set(theirs) != set(layout):
        _refuse("checkpoint['optimizer']", f'holds optimizers {sorted(map(str, theirs))}, '
                f'this run has {sorted(layout)}')
    for name, state in theirs.items():
        _check_one_optimizer(state, layout[name], f"checkpoint['optimizer'][{name!r}]")


# ----------------------------------------------------------------- schedulers
def scheduler_states(schedulers) -> Any:
    """The built schedulers' own state dicts, in the shape the checkpoint keeps
    them (a list, or a dict of lists); None when there are none."""
    if schedulers is None:
        return None
    if isinstance(schedulers, dict):
        return {name: [s.state_dict() for s in group] for name, group in schedulers.items()}
    return [s.state_dict() for s in schedulers]


def _same_kind(theirs, ours) -> bool:
    if ours is None or isinstance(ours, bool):
        return type(theirs) is type(ours) or theirs is None
    if _is_number(ours):
        return _is_number(theirs)
    if isinstance(ours, (list, tuple)):
        return (isinstance(theirs, (list, tuple)) and len(theirs) == len(ours)
                and all(_same_kind(t, o) for t, o in zip(theirs, ours)))
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and set(theirs) == set(ours) and all(
            _same_kind(theirs[k], ours[k]) for k in ours)
    return type(theirs) is type(ours)


def _check_scheduler_list(theirs, ours: list, field: str) -> None:
    if not isinstance(theirs, list) or len(theirs) != len(ours):
        _refuse(field, f'must be a list of {len(ours)} scheduler state(s), one per scheduler '
                f'of this config, got {_describe(theirs)}')
    for i, (state, own) in enumerate(zip(theirs, ours)):
        where = f'{field}[{i}]'
        keys = set(_dict(state, where))
        if keys != set(own):
            _refuse(where, f'has keys {sorted(map(str, keys ^ set(own)))} that this config\'s '
                    'scheduler does not (or lacks them): it was saved by another kind of '
                    'scheduler, and each key would be set as an attribute of this one')
        for key, value in state.items():
            if not _same_kind(value, own[key]):
                _refuse(f'{where}[{key!r}]', f'is {_describe(value)}, this scheduler keeps '
                        f'{_describe(own[key])} there')


def check_param_schedulers(theirs, ours) -> None:
    """``param_schedulers`` against the built schedulers' state dicts."""
    field = "checkpoint['param_schedulers']"
    if isinstance(ours, dict):
        _dict(theirs, field)
        if set(theirs) != set(ours):
            _refuse(field, f'holds schedulers of {sorted(map(str, theirs))}, this run has '
                    f'{sorted(ours)}')
        for name in ours:
            _check_scheduler_list(theirs[name], ours[name], f'{field}[{name!r}]')
    else:
        _check_scheduler_list(theirs, ours, field)


# ------------------------------------------------------------ tensors and RNG
def _tensor_dict(value, field: str) -> None:
    for key, tensor in _dict(value, field).items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            _refuse(f'{field}[{key!r}]', f'must be a tensor named by a string, got '
                    f'{_describe(tensor)}')
    metadata = getattr(value, '_metadata', None)
    if metadata is not None:
        _plain(_dict(metadata, f'{field}._metadata'), f'{field}._metadata')


def check_rng_states(states) -> None:
    """This project's ``torch_rng_state``: per rank, torch's generator states."""
    field = f'checkpoint[{RNG_KEY!r}]'
    if not isinstance(states, list):
        _refuse(field, f'must be a list of per-rank generator states, got {_describe(states)}')
    cpu_size = torch.get_rng_state().numel()
    for rank, state in enumerate(states):
        where = f'{field}[{rank}]'
        if set(_dict(state, where)) - {'cpu', 'cuda'}:
            _refuse(where, f'has keys {sorted(map(str, state))}; it keeps only cpu and cuda')
        cpu = state.get('cpu')
        if not (isinstance(cpu, torch.Tensor) and cpu.dtype == torch.uint8
                and tuple(cpu.shape) == (cpu_size,)):
            _refuse(f"{where}['cpu']", f'must be a torch.uint8 tensor of shape ({cpu_size},), '
                    f"torch's CPU generator state, got {_describe(cpu)}")
        cuda = state.get('cuda', [])
        if not (isinstance(cuda, (list, tuple)) and all(
                isinstance(s, torch.Tensor) and s.dtype == torch.uint8 and s.ndim == 1
                for s in cuda)):
            _refuse(f"{where}['cuda']", f'must be a list of uint8 vectors, got {_describe(cuda)}')


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
        _dict(checkpoint, 'the checkpoint')
        for key in ('meta', 'message_hub'):
            if key not in checkpoint:
                _refuse(f'checkpoint[{key!r}]', 'is missing: this is not a checkpoint saved '
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
            _refuse(f'checkpoint[{RUN_KEY!r}]', f'must be 32 hex digits, got '
                    f'{_describe(checkpoint[RUN_KEY])}')
    except _Refusal as refusal:
        raise UnsafeResumeError(
            f'Refused to resume from {source}: {refusal.field} {refusal.problem}. A checkpoint '
            "is untrusted input, and on --resume mmengine acts on this field; this one is not "
            "what mmengine's and this project's checkpoint hooks write. Resume only checkpoints "
            'that your own training saved; to start a new run from its weights alone, use '
            'load_from=CHECKPOINT without --resume (then only its state_dict is read).') from None
