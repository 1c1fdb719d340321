"""Checkpoint surgery for ``DNCDecodeHead``: make a state dict of another
head, other classes or an older version loadable, and say what changed.

Each function takes the head (for its shapes and buffers), the state dict and
the head's key prefix, edits the state dict in place, and returns the one-line
message for the log (None when nothing changed). Nothing is re-initialised
that could serve this model as it is.
"""
from typing import Iterator, Optional

import torch


def adapt_state_dict(head, state_dict: dict, prefix: str) -> Iterator[str]:
    """All the steps, in order; yields their messages.

    Raises:
        ValueError: the checkpoint's sub-centroids are not finite.
    """
    check_finite_subcentroids(state_dict, prefix)
    for step in (adapt_foreign_head, adapt_foreign_memory, fill_missing_learning_state):
        message = step(head, state_dict, prefix)
        if message:
            yield message


def _name(head, prefix: str) -> str:
    return prefix.rstrip('.') or type(head).__name__


def check_finite_subcentroids(state_dict: dict, prefix: str) -> None:
    """Sub-centroids with NaN or inf come from a diverged run; refuse them."""
    theirs = state_dict.get(prefix + 'sub_centroids')
    if theirs is not None and not torch.isfinite(theirs).all():
        bad = int((~torch.isfinite(theirs)).sum())
        raise ValueError(
            f'{prefix}sub_centroids in the checkpoint holds {bad} non-finite '
            'values (NaN or inf): the run that saved it diverged, and every '
            'prediction from it would be meaningless. Use an earlier checkpoint '
            'of that run.')


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
    ours = head.class_state()
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
    missing = {name: tensor for name, tensor in head.learning_state().items()
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
