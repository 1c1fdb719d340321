"""Checkpoint surgery for ``DNCDecodeHead``: make a state dict of another
head, other classes or an older version loadable, and say what changed.

Each function takes the head (for its shapes and buffers), the state dict and
the head's key prefix, edits the state dict in place, and returns the one-line
message for the log (None when nothing changed). Nothing is re-initialised
that could serve this model as it is.
"""
from typing import Dict, Iterator, Optional

import torch
from torch import Tensor

from .provenance import check_source_table

# how far from 1 the norm of a float32 sub-centroid may be: training keeps them
# unit to about 1e-6; a zero, scaled or hand-made one is far outside
UNIT_TOLERANCE = 1e-3


def adapt_state_dict(head, state_dict: dict, prefix: str) -> Iterator[str]:
    """All the steps, in order; yields their messages.

    Raises:
        ValueError: the checkpoint's sub-centroids are not finite unit vectors
            (:func:`check_subcentroids`).
    """
    check_subcentroids(state_dict, prefix)
    for step in (adapt_foreign_head, adapt_foreign_memory, fill_missing_learning_state):
        message = step(head, state_dict, prefix)
        if message:
            yield message
    if prefix + 'subcentroid_source' in state_dict:  # untrusted: rows, not a warning
        check_source_table(state_dict[prefix + 'subcentroid_source'],
                           head.sub_centroids.shape[:2], origin='the checkpoint',
                           entry=prefix + 'subcentroid_source')


def class_state(head) -> Dict[str, Tensor]:
    """What belongs to a head's classes: the sub-centroids, the learning
    state, the memory and the class-score norm, by state_dict name relative
    to the head."""
    state = {'sub_centroids': head.sub_centroids}
    state.update({name: tensor for name, tensor in learning_state(head).items()
                  if tensor is not None})
    if head.memory is not None:
        state.update(memory=head.memory, memory_filled=head.memory_filled,
                     memory_pointer=head.memory_pointer)
    if head.score_norm is not None:
        state.update({'score_norm.weight': head.score_norm.weight,
                      'score_norm.bias': head.score_norm.bias})
    return state


def learning_state(head) -> Dict[str, Optional[Tensor]]:
    """The buffers of a head's learning mechanisms (None where one is off)."""
    return {name: getattr(head, name) for name in (
        'subcentroid_seeded', 'subcentroid_updates', 'subcentroid_wins',
        'restart_window_step', 'subcentroid_source')}


def _name(head, prefix: str) -> str:
    return prefix.rstrip('.') or type(head).__name__


def check_subcentroids(state_dict: dict, prefix: str) -> None:
    """The checkpoint's sub-centroids must be what training keeps: finite unit
    vectors (C, K, D) of a floating dtype. Every slot is held to it, the unused
    ones of a per-class K too: they keep their random unit start.

    Raises:
        ValueError: naming the key, what is wrong and what to do.
    """
    key = prefix + 'sub_centroids'
    theirs = state_dict.get(key)
    if theirs is None:
        return
    fix = ('Use a checkpoint that training saved (or an earlier one of that run); to '
           f"fine-tune from the rest of its weights, delete '{key}' (and the "
           f"'{prefix}subcentroid_*' keys beside it) from its state_dict and load it with "
           'load_from=CHECKPOINT: the head then starts from random unit sub-centroids.')
    if not isinstance(theirs, torch.Tensor):
        raise ValueError(f'{key} in the checkpoint is a {type(theirs).__name__}, not a '
                         f'tensor. {fix}')
    if not torch.isfinite(theirs).all():
        bad = int((~torch.isfinite(theirs)).sum())
        raise ValueError(
            f'{key} in the checkpoint holds {bad} non-finite '
            'values (NaN or inf): the run that saved it diverged, and every '
            'prediction from it would be meaningless. Use an earlier checkpoint '
            'of that run.')
    if not theirs.is_floating_point():
        raise ValueError(
            f'{key} in the checkpoint is {theirs.dtype}: sub-centroids are unit vectors of '
            'a floating dtype (training saves float32), so this tensor was not saved by '
            f'training. {fix}')
    rows = torch.atleast_1d(theirs)
    norms = torch.linalg.vector_norm(rows.float().reshape(-1, rows.shape[-1]), dim=-1)
    # a unit vector rounded to a narrow dtype is unit to about its epsilon
    tolerance = max(UNIT_TOLERANCE, torch.finfo(theirs.dtype).eps)
    off = ((norms - 1).abs() > tolerance).nonzero().flatten().tolist()
    if off:
        examples = ', '.join(f'{_row_index(i, rows.shape[:-1])} (norm {norms[i]:.3g})'
                             for i in off[:3])
        zero = int((norms[off] == 0).sum())
        raise ValueError(
            f'{key} in the checkpoint holds {len(off)} of {norms.numel()} sub-centroids '
            f'that are not unit vectors (norm outside 1 +- {tolerance:g})'
            f'{f", {zero} of them all zero" if zero else ""}; '
            f"{'(class, slot)' if rows.ndim == 3 else 'index'}: {examples}"
            f'{f" and {len(off) - 3} more" if len(off) > 3 else ""}. DNC scores a pixel by '
            'its cosine to unit sub-centroids, and training keeps every one of them unit '
            '(the unused slots of a per-class K keep their random unit start), so this '
            f'checkpoint was not saved by training or was edited since. {fix}')


def _row_index(flat: int, shape) -> list:
    """The index of row ``flat`` of a tensor whose leading dims are ``shape``."""
    if not shape:
        return [flat]
    index = []
    for size in reversed(shape):
        flat, i = divmod(flat, size)
        index.insert(0, i)
    return index


def adapt_foreign_head(head, state_dict: dict, prefix: str) -> Optional[str]:
    """A DNC head trained for other classes (or another K or width): its
    sub-centroids, learning state, memory and class-score norm cannot serve
    this model's classes, so they are re-initialised. A parametric head
    (mmseg's ``conv_seg``): its 1x1 classifier is skipped, and the same state
    is re-initialised. Everything else (backbone, decoder) loads as usual."""
    theirs = state_dict.get(prefix + 'sub_centroids')
    classifier = [prefix + name for name in ('conv_seg.weight', 'conv_seg.bias')
                  if prefix + name in state_dict]
    if theirs is None and not classifier:
        return None  # same kind of head, or no head in the checkpoint at all
    if theirs is not None and theirs.shape == head.sub_centroids.shape:
        return None
    ours = class_state(head)
    for key in [k for k in state_dict if k[len(prefix):] in ours
                or k[len(prefix):].startswith('memory')]:
        del state_dict[key]
    for key in classifier:
        del state_dict[key]
    fresh = {'sub_centroids': head._random_subcentroids(*head.sub_centroids.shape[1:])}
    for name, tensor in ours.items():
        if name != 'sub_centroids':
            fresh[name] = (torch.ones_like(tensor) if name == 'score_norm.weight'
                           else torch.full_like(tensor, -1) if name == 'subcentroid_source'
                           else torch.zeros_like(tensor))
    for name, tensor in fresh.items():
        state_dict[prefix + name] = tensor.to(head.sub_centroids.device)
    names = ', '.join(fresh)
    if theirs is None:
        # DNC's own layers are not in a parametric checkpoint either
        own = {name: tensor for name, tensor in head.state_dict().items()
               if name.startswith(('feature_norm.', 'projection.'))
               and prefix + name not in state_dict}
        state_dict.update({prefix + name: tensor for name, tensor in own.items()})
        layers = sorted({name.split('.')[0] for name in own})
        why = (f'the checkpoint has a parametric head: its 1x1 classifier '
               f'({", ".join(classifier)}) has no place in DNC and is skipped, and '
               f"DNC's own layers ({', '.join(layers)}) start from their initialisation")
    else:
        why = (f"the checkpoint's sub-centroids are {tuple(theirs.shape)} (classes, K, "
               f"channels), this model's {tuple(head.sub_centroids.shape)}")
    return (f'{_name(head, prefix)}: {why}; {names} are re-initialised; the rest of the '
            'checkpoint loads as usual.')


def adapt_foreign_memory(head, state_dict: dict, prefix: str) -> Optional[str]:
    """A memory of another size: it starts empty (its fill counters would
    otherwise load and point into an all-zero memory)."""
    key = prefix + 'memory'
    if head.memory is None or key not in state_dict or \
            state_dict[key].shape == head.memory.shape:
        return None
    message = (f"{_name(head, prefix)}: the checkpoint's memory is "
               f'{tuple(state_dict[key].shape)}, this model\'s {tuple(head.memory.shape)}; '
               'the memory starts empty, the rest loads as usual.')
    for name in ('memory', 'memory_filled', 'memory_pointer'):
        state_dict[prefix + name] = torch.zeros_like(getattr(head, name))
    return message


def fill_missing_learning_state(head, state_dict: dict, prefix: str) -> Optional[str]:
    """A checkpoint saved without a learning mechanism that is now on (by an
    older version, or with other settings): its sub-centroids are trained, so
    they count as seeded and fully warmed up, and the restart window starts
    empty. The checkpoint's own tensors are not changed."""
    if prefix + 'sub_centroids' not in state_dict:
        return None
    missing = {name: tensor for name, tensor in learning_state(head).items()
               if tensor is not None and prefix + name not in state_dict}
    if not missing:
        return None
    for name, tensor in missing.items():
        if name == 'subcentroid_seeded':
            tensor = torch.ones_like(tensor)
        elif name == 'subcentroid_updates':  # momentum at its final value
            tensor = torch.full_like(tensor, 1e9)
        elif name == 'subcentroid_source':  # learned, not snapped: no pixel behind them
            tensor = torch.full_like(tensor, -1)
        else:
            tensor = torch.zeros_like(tensor)
        state_dict[prefix + name] = tensor
    said = []
    if set(missing) - {'subcentroid_source'}:
        said.append('its sub-centroids count as seeded and warmed up (momentum at its final '
                    'value)')
    if 'subcentroid_source' in missing:
        said.append('they are learned, not snapped to pixels (no provenance until a snap)')
    return (f"{_name(head, prefix)}: the checkpoint has no {', '.join(missing)}; "
            f"{'; '.join(said)}.")
