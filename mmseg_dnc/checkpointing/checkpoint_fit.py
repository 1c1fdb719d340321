"""Before evaluating: the checkpoint's DNC head must be the config's.

Loading for fine-tuning re-initialises sub-centroids of another shape (see
``DNCDecodeHead``); a model evaluated that way scores with random ones. What
has to agree is the number of classes, the width, and each class's K: the
buffer ``decode_head.sub_centroids`` is ``(C, Kmax, D)`` whatever the per-class
K, and a class with fewer sub-centroids than Kmax leaves its last slots at
their random start, masked out of every score. So a checkpoint trained with
K=[10, 5, ...] and a config with K=10 (or the reverse) have the same buffer
shape, and the slots one of them uses are random in the other. The values do
not tell which slots were trained; the training config saved in the
checkpoint (``meta['cfg']``, which mmengine writes) does, and it is read here
as text, with ``ast``, never executed.

:func:`check_checkpoint_fits` loads a checkpoint exactly as mmengine does
(same path, same scheme dispatch) and checks it; ``tools/test.py`` checks the
very dict mmengine loads, through :class:`CheckpointFitsHook`.
"""
import ast
import inspect
import logging
import re
from typing import List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg_dnc.models import DNCDecodeHead
from mmseg_dnc.models.build_checks import per_class_k
from .loader import load_checkpoint_file, load_lazily, state_dict_of

KEY = 'decode_head.sub_centroids'
DEFAULT_K = inspect.signature(DNCDecodeHead.__init__).parameters['num_subcentroids'].default

# (classes, K of each class, channels)
HeadShape = Tuple[int, List[int], int]


def head_shape_of_config(cfg) -> Optional[HeadShape]:
    """The DNC head a config builds; None when its decode head is not DNC."""
    head = (cfg.get('model') or {}).get('decode_head')
    if not (isinstance(head, dict) and head.get('type') == 'DNCDecodeHead'):
        return None
    classes = head['num_classes']
    return classes, per_class_k(head.get('num_subcentroids', DEFAULT_K), classes), head['channels']


def head_shape_of_model(model) -> Optional[HeadShape]:
    """The DNC head of a built segmentor (DDP and TTA wrappers unwrapped)."""
    while hasattr(model, 'module'):
        model = model.module
    head = getattr(model, 'decode_head', None)
    if not isinstance(head, DNCDecodeHead):
        return None
    classes, _, channels = head.sub_centroids.shape
    return classes, list(head.num_subcentroids), channels


def _keywords(node) -> dict:
    """The keys of a ``dict(...)`` or ``{...}`` node, by name."""
    if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict':
        return {k.arg: k.value for k in node.keywords if k.arg}
    if isinstance(node, ast.Dict):
        return {k.value: v for k, v in zip(node.keys, node.values)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return {}


def trained_k(checkpoint: dict) -> Optional[List[int]]:
    """Each class's K as the checkpoint was trained, from its saved config
    text (parsed, not executed); None when it holds no readable one."""
    text = (checkpoint.get('meta') or {}).get('cfg') if isinstance(checkpoint, dict) else None
    try:
        tree = ast.parse(text) if isinstance(text, str) else None
    except (SyntaxError, ValueError):
        return None
    for statement in getattr(tree, 'body', []):
        if isinstance(statement, ast.Assign) and any(
                getattr(t, 'id', None) == 'model' for t in statement.targets):
            head = _keywords(_keywords(statement.value).get('decode_head'))
            try:
                if ast.literal_eval(head['type']) != 'DNCDecodeHead':
                    return None
                classes = ast.literal_eval(head['num_classes'])
                k = ast.literal_eval(head['num_subcentroids']) \
                    if 'num_subcentroids' in head else DEFAULT_K
                return per_class_k(k, classes)
            except (KeyError, ValueError, TypeError, SyntaxError):
                return None
    return None


def check_state_fits(checkpoint, expected: HeadShape, source: str) -> None:
    """Raise ValueError when ``checkpoint`` (as loaded) was trained for
    another DNC head than ``expected``; warn when its per-class K cannot be known.

    Keys are read as mmengine loads them: DDP's ``module.`` prefix stripped.
    A ``state_dict`` that is not a dict raises
    :class:`~.loader.MalformedCheckpointError`.
    """
    state = state_dict_of(checkpoint, source)
    state = {re.sub(r'^module\.', '', key): value for key, value in state.items()
             if isinstance(key, str)}
    classes, ks, channels = expected
    needed = (classes, max(ks), channels)
    theirs = state.get(KEY)
    fix = ('Evaluated with this config its sub-centroids would be random. Use the config '
           'it was trained with, or fine-tune it to this one first (load_from=CHECKPOINT).')
    if theirs is None or tuple(theirs.shape) != needed:
        what = (f'sub-centroids {tuple(theirs.shape)} (classes, K, channels)' if theirs is not None
                else 'a parametric decode head (decode_head.conv_seg)'
                if 'decode_head.conv_seg.weight' in state else 'no DNC decode head')
        raise ValueError(f"{source} holds {what}; this config's DNC head needs {needed}. {fix}")
    trained = trained_k(checkpoint)
    if trained is None:
        print_log(f"{source} holds no training config (meta['cfg']) to tell each class's K: "
                  f'it is evaluated with num_subcentroids={_short(ks)}; if it was trained with '
                  'other per-class K, the slots it did not use score as random sub-centroids.',
                  logger='current', level=logging.WARNING)
    elif trained != ks:
        differ = [c for c, (a, b) in enumerate(zip(trained, ks)) if a != b]
        raise ValueError(
            f'{source} was trained with num_subcentroids={_short(trained)} (its saved config), '
            f'this config has {_short(ks)}: classes {differ[:10]} differ, and the '
            f'sub-centroid slots one uses and the other does not are random. {fix}')


def _short(ks: List[int]):
    return ks[0] if len(set(ks)) == 1 else ks


def check_checkpoint_fits(cfg, checkpoint: str) -> None:
    """Load ``checkpoint`` as mmengine will (same name, same scheme: local
    files mapped, not read, where they can be) and check it fits ``cfg``'s
    DNC head (:func:`check_state_fits`). Nothing to check without a DNC head.

    Raises:
        ValueError: the checkpoint was trained for another head.
    """
    expected = head_shape_of_config(cfg)
    if expected is None:
        return
    loader = CheckpointLoader._get_checkpoint_loader(checkpoint)
    if loader is load_checkpoint_file:
        loaded = load_lazily(checkpoint)
    else:
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    check_state_fits(loaded, expected, checkpoint)


@HOOKS.register_module()
class CheckpointFitsHook(Hook):
    """Check every checkpoint the runner loads against its built DNC head,
    on the very dict mmengine loads (``tools/test.py`` adds it)."""

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        expected = head_shape_of_model(runner.model)
        if expected is not None:
            check_state_fits(checkpoint, expected, str(runner._load_from))
