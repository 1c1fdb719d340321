"""What DNCDecodeHead checks when it is built: the decoder it extends, its
DNC settings, and the init_cfg of the 1x1 conv it removes. Every failure
names the key or type and what would work."""
from numbers import Integral, Real
from typing import List, Optional

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

SEAM_HELP = (
    'DNCDecodeHead needs a decoder whose forward is `_forward_feature(inputs)` '
    'followed by `cls_seg(feat)`, as FCNHead, ASPPHead, PSPHead and UPerHead '
    'in mmseg 1.x')


def seam_error(decoder_cls: type) -> Optional[str]:
    """Why ``decoder_cls`` cannot carry DNC, or None when it can."""
    name = decoder_cls.__name__
    if not (isinstance(decoder_cls, type) and issubclass(decoder_cls, BaseDecodeHead)):
        return f'{name} is not an mmseg decode head (a BaseDecodeHead subclass)'
    feature_owner = next((c for c in decoder_cls.__mro__
                          if '_forward_feature' in vars(c)), None)
    forward_owner = next(c for c in decoder_cls.__mro__ if 'forward' in vars(c))
    if feature_owner is None:
        return f'{name} has no `_forward_feature`'
    if not issubclass(feature_owner, forward_owner):
        return (f'{name}.forward (from {forward_owner.__name__}) does not go '
                f'through `_forward_feature` (from {feature_owner.__name__})')
    return None


def resolve_decoder(decoder) -> type:
    """The decoder class named by ``decoder`` (a registry name or a class),
    checked to have the ``_forward_feature``/``cls_seg`` seam."""
    if decoder is None:
        raise TypeError(
            "DNCDecodeHead needs `decoder`: the type the decode head had before, "
            "e.g. decode_head=dict(type='DNCDecodeHead', decoder='ASPPHead', ...).")
    if isinstance(decoder, str):
        decoder_cls = MODELS.get(decoder)
        if decoder_cls is None:
            raise KeyError(
                f"DNCDecodeHead(decoder='{decoder}'): no such head in mmseg's "
                "MODELS registry. Use the type of your decode head, e.g. "
                "'FCNHead', 'ASPPHead' or 'UPerHead' (add the module defining it "
                'to custom_imports if it is your own).')
    else:
        decoder_cls = decoder
    why = seam_error(decoder_cls)
    if why is not None:
        raise TypeError(f'DNCDecodeHead(decoder={decoder_cls.__name__!r}): {why}. '
                        f'{SEAM_HELP}.')
    return decoder_cls


def _check(condition: bool, key: str, value, need: str) -> None:
    if not condition:
        raise ValueError(f'DNCDecodeHead: {key}={value!r} is invalid; {need}.')


def _real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_settings(num_classes, num_subcentroids, momentum, epsilon, iterations,
                   update_from, ppc_weight, ppd_weight, ppc_temperature, score_norm,
                   score_temperature, memory_size, memory_per_step) -> List[int]:
    """Validate the DNC keys; returns K per class."""
    _check(isinstance(num_classes, Integral) and num_classes >= 1,
           'num_classes', num_classes, 'it must be a positive int')
    if isinstance(num_subcentroids, Integral):
        _check(num_subcentroids >= 1, 'num_subcentroids', num_subcentroids,
               'K must be >= 1 (the paper uses 10)')
        per_class = [int(num_subcentroids)] * num_classes
    else:
        per_class = list(num_subcentroids)
        _check(len(per_class) == num_classes, 'num_subcentroids',
               num_subcentroids,
               f'a per-class list needs one K per class: {num_classes} '
               f'values, got {len(per_class)}')
        _check(all(isinstance(k, Integral) and k >= 1 for k in per_class),
               'num_subcentroids', num_subcentroids, 'every K must be an int >= 1')
    _check(_real(momentum) and 0.0 <= momentum < 1.0, 'momentum', momentum,
           'it must be in [0, 1) (the paper uses 0.999)')
    _check(_real(epsilon) and epsilon > 0, 'sinkhorn_epsilon', epsilon,
           'it must be > 0 (the paper uses 0.05)')
    _check(isinstance(iterations, Integral) and iterations >= 1,
           'sinkhorn_iterations', iterations, 'it must be an int >= 1 (the paper uses 3)')
    _check(update_from in ('correct', 'all'), 'update_from', update_from,
           "use 'correct' or 'all'")
    _check(_real(ppc_weight) and ppc_weight >= 0, 'loss_ppc_weight', ppc_weight,
           'it must be >= 0')
    _check(_real(ppd_weight) and ppd_weight >= 0, 'loss_ppd_weight', ppd_weight,
           'it must be >= 0')
    _check(_real(ppc_temperature) and ppc_temperature > 0, 'ppc_temperature',
           ppc_temperature, 'it must be > 0')
    _check(score_norm in ('layernorm', 'temperature'), 'score_norm', score_norm,
           "use 'layernorm' or 'temperature'")
    _check(_real(score_temperature) and score_temperature > 0, 'score_temperature',
           score_temperature, 'it must be > 0')
    _check(isinstance(memory_size, Integral) and memory_size >= 0, 'memory_size',
           memory_size, 'it must be an int >= 0 (0 turns the memory off)')
    _check(isinstance(memory_per_step, Integral) and memory_per_step >= 1,
           'memory_per_step', memory_per_step, 'it must be an int >= 1')
    return per_class


def without_conv_seg(init_cfg):
    """Drop init_cfg overrides aimed at the removed ``conv_seg``."""
    if isinstance(init_cfg, (list, tuple)):
        kept = [cfg for cfg in (without_conv_seg(c) for c in init_cfg) if cfg]
        return kept or None
    if isinstance(init_cfg, dict):
        override = init_cfg.get('override')
        if isinstance(override, dict) and override.get('name') == 'conv_seg':
            return None  # the default init of BaseDecodeHead: nothing left to init
        if isinstance(override, (list, tuple)):
            rest = [o for o in override if o.get('name') != 'conv_seg']
            init_cfg = dict(init_cfg, override=rest) if rest else None
    return init_cfg
