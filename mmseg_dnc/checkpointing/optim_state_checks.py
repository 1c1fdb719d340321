"""Optimizer and scheduler state in a resumed checkpoint, against the run's own.

``OptimWrapper.load_state_dict`` hands ``state`` and ``param_groups`` to torch
(which checks only the group sizes), adds ``base_param_settings`` as a group
the schedulers step, and loads ``loss_scaler``; each scheduler's
``load_state_dict`` is ``__dict__.update``, so every key becomes an attribute,
and ``Runner.resume`` pairs schedulers with ``zip``, dropping extra or missing
ones. The layout they must fit is taken from the built optimizer wrapper and
schedulers (:func:`optimizer_layout`, :func:`scheduler_states`).
"""
import numbers
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.optim import OptimWrapper, OptimWrapperDict

from .schema import check_dict, check_plain, describe, is_int, is_number, refuse

_WRAPPER_KEYS = {'state', 'param_groups', 'base_param_settings', 'loss_scaler'}


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
    """A number, bool, string or None, or a list of numbers or strings (betas,
    parameter names)."""
    def scalar(v):
        return v is None or isinstance(v, (bool, str, numbers.Number, np.generic))
    if not (scalar(value) or (isinstance(value, (list, tuple))
                              and all(scalar(v) and v is not None for v in value))):
        refuse(field, f'must be a number, bool, string or list of them, got {describe(value)}')


def _check_one_optimizer(theirs, layout: dict, field: str) -> None:
    extra = set(check_dict(theirs, field)) - _WRAPPER_KEYS
    if extra:
        refuse(field, f'holds {sorted(map(str, extra))}, which an optimizer wrapper does '
               'not save')
    groups = theirs.get('param_groups')
    state = check_dict(theirs.get('state'), f"{field}['state']")
    if not isinstance(groups, list) or len(groups) != len(layout['groups']):
        refuse(f"{field}['param_groups']", f'must be a list of {len(layout["groups"])} '
               f'group(s), as this optimizer has, got {describe(groups)}')
    shapes = {}
    for g, (group, ours) in enumerate(zip(groups, layout['groups'])):
        where = f"{field}['param_groups'][{g}]"
        params = check_dict(group, where).get('params')
        if not (isinstance(params, list) and all(is_int(p) for p in params)
                and len(params) == len(ours)):
            refuse(f"{where}['params']", f'must list {len(ours)} parameter ids, as this '
                   f'group has, got {describe(params)}')
        shapes.update(zip(params, ours))
        for key, value in group.items():
            if key != 'params':
                _hyper_parameter(value, f'{where}[{key!r}]')
    if len(shapes) != sum(map(len, layout['groups'])):
        refuse(f"{field}['param_groups']", 'list a parameter id twice')
    for pid, entry in state.items():
        where = f"{field}['state'][{pid!r}]"
        if pid not in shapes:
            refuse(where, 'is the state of a parameter that no group lists')
        for name, value in check_dict(entry, where).items():
            if isinstance(value, torch.Tensor):
                if not _state_tensor_fits(tuple(value.shape), shapes[pid]):
                    refuse(f'{where}[{name!r}]', f'is {describe(value)}, its parameter\'s '
                           f'shape is {shapes[pid]}')
            else:
                _hyper_parameter(value, f'{where}[{name!r}]')
    if 'base_param_settings' in theirs:
        settings = theirs['base_param_settings']
        if not layout['base_param_settings']:
            refuse(f"{field}['base_param_settings']", 'is present, and this optimizer '
                   'wrapper keeps none: it would add a parameter group for the schedulers')
        for key, value in check_dict(settings, f"{field}['base_param_settings']").items():
            if key == 'params' and _placeholder_params(value):
                continue
            _hyper_parameter(value, f"{field}['base_param_settings'][{key!r}]")
    scaler = check_dict(theirs.get('loss_scaler', {}), f"{field}['loss_scaler']")
    for key, value in scaler.items():
        if not is_number(value):
            refuse(f"{field}['loss_scaler'][{key!r}]", f'must be a number, got '
                   f'{describe(value)}')


def check_optimizer(theirs, layout: Dict[str, dict]) -> None:
    """``optimizer`` against the built optimizer wrapper (:func:`optimizer_layout`)."""
    if list(layout) == ['']:
        _check_one_optimizer(theirs, layout[''], "checkpoint['optimizer']")
        return
    check_dict(theirs, "checkpoint['optimizer']")
    if set(theirs) != set(layout):
        refuse("checkpoint['optimizer']", f'holds optimizers {sorted(map(str, theirs))}, '
               f'this run has {sorted(layout)}')
    for name, state in theirs.items():
        _check_one_optimizer(state, layout[name], f"checkpoint['optimizer'][{name!r}]")


def scheduler_states(schedulers) -> Any:
    """The built schedulers' own state dicts, in the shape the checkpoint keeps
    them (a list, or a dict of lists); None when there are none."""
    if schedulers is None:
        return None
    if isinstance(schedulers, dict):
        return {name: [s.state_dict() for s in group] for name, group in schedulers.items()}
    return [s.state_dict() for s in schedulers]


def _same_kind(theirs, ours) -> bool:
    """``theirs`` can stand where the scheduler keeps ``ours``: a number for a
    number, a list as long (one value per parameter group), a dict for a dict
    (e.g. milestones), None only where it keeps None."""
    if isinstance(ours, bool) or isinstance(ours, str):
        return type(theirs) is type(ours)
    if is_number(ours):
        return is_number(theirs)
    if isinstance(ours, (list, tuple)):
        return (isinstance(theirs, (list, tuple)) and len(theirs) == len(ours)
                and all(_same_kind(t, o) for t, o in zip(theirs, ours)))
    if isinstance(ours, dict):
        return isinstance(theirs, dict)
    return ours is None or type(theirs) is type(ours)


def _check_scheduler_list(theirs, ours: list, field: str) -> None:
    if not isinstance(theirs, list) or len(theirs) != len(ours):
        refuse(field, f'must be a list of {len(ours)} scheduler state(s), one per scheduler '
               f'of this config, got {describe(theirs)}')
    for i, (state, own) in enumerate(zip(theirs, ours)):
        where = f'{field}[{i}]'
        keys = set(check_dict(state, where))
        if keys != set(own):
            refuse(where, f'has keys {sorted(map(str, keys ^ set(own)))} that this config\'s '
                   'scheduler does not (or lacks them): it was saved by another kind of '
                   'scheduler, and each key would be set as an attribute of this one')
        for key, value in state.items():
            check_plain(value, f'{where}[{key!r}]')
            if not _same_kind(value, own[key]):
                refuse(f'{where}[{key!r}]', f'is {describe(value)}, this scheduler keeps '
                       f'{describe(own[key])} there')


def check_param_schedulers(theirs, ours) -> None:
    """``param_schedulers`` against the built schedulers' state dicts."""
    field = "checkpoint['param_schedulers']"
    if isinstance(ours, dict):
        check_dict(theirs, field)
        if set(theirs) != set(ours):
            refuse(field, f'holds schedulers of {sorted(map(str, theirs))}, this run has '
                   f'{sorted(ours)}')
        for name in ours:
            _check_scheduler_list(theirs[name], ours[name], f'{field}[{name!r}]')
    else:
        _check_scheduler_list(theirs, ours, field)


def _placeholder_params(value) -> bool:
    """mmengine 0.10.7 keeps ``base_param_settings['params']`` as a one-element
    tensor (``torch.tensor([0.0])``) for an optimizer with several parameter
    groups (``paramwise_cfg``); ``[]`` is accepted too."""
    if isinstance(value, torch.Tensor):
        return value.numel() <= 1
    return isinstance(value, list) and not value
