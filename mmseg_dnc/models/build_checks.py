"""What DNCDecodeHead checks when it is built: the decoder it extends, its
DNC settings, and the init_cfg of the 1x1 conv it removes. Every failure
names the key or type and what would work."""
import inspect
import math
from numbers import Integral, Real
from typing import List, Optional

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

SEAM_HELP = (
    'DNCDecodeHead replaces `cls_seg`, the 1x1 conv that nearly every mmseg head '
    'applies last to a `channels`-wide feature map (FCN, DeepLabV3(+), PSP, UPer, '
    'SegFormer, OCR, SegNeXt, ...); a head that classifies otherwise cannot carry it: '
    "keep this head parametric, or use one that README's table marks 'trains'")

# mmseg 1.2.2's heads that have no per-pixel `cls_seg` to replace, and why
NOT_CLS_SEG = {
    'MaskFormerHead': 'a mask-classification head (MaskFormer): it predicts N query masks '
                      'and one class per mask, not a class per pixel by `cls_seg`',
    'Mask2FormerHead': 'a mask-classification head (Mask2Former): it predicts N query '
                       'masks and one class per mask, not a class per pixel by `cls_seg`',
    'IterativeDecodeHead': "a mask-classification head (K-Net): its kernels start as its "
                           "kernel_generate_head's `conv_seg` weights and are updated per "
                           'image, so there is no fixed 1x1 classifier to replace',
    'KernelUpdateHead': "a stage of K-Net's IterativeDecodeHead (mask classification), "
                        'not a decode head',
    'SegmenterMaskTransformerHead': "a mask-classification head (Segmenter's mask "
                                    'transformer): classes are learned class tokens '
                                    'multiplied with patch embeddings; it deletes `conv_seg`',
    'SideAdapterCLIPHead': 'a mask-classification head (SAN): masks are classified by '
                           'CLIP text embeddings; it deletes `conv_seg`',
    'PointHead': "PointRend's point head: its `cls_seg` is a Conv1d over sampled points' "
                 'fine-grained features concatenated with the coarse logits (channels + '
                 'num_classes wide), not a 1x1 conv on a `channels`-wide map; put DNC on '
                 'the first stage of the cascade (FPNHead) instead',
    'STDCHead': "STDC's detail head: it learns 0/1 boundaries (its loss_by_feat turns the "
                'labels into boundary targets for a sigmoid loss), not classes; it is an '
                'auxiliary head, keep it as it is',
    'VPDDepthHead': 'a depth regression head: it has no classes',
}


def _names_cls_seg(cls: type) -> bool:
    """Whether some method that ``cls`` uses, defined below BaseDecodeHead,
    reads ``cls_seg`` (the methods it overrides do not count)."""
    names = {name for klass in cls.__mro__ if issubclass(klass, BaseDecodeHead)
             and klass is not BaseDecodeHead for name in vars(klass)}
    for name in names:
        method = inspect.getattr_static(cls, name)
        method = inspect.unwrap(getattr(method, '__func__', method))  # decorators
        if _reads(getattr(method, '__code__', None), 'cls_seg'):
            return True
    return False


def _reads(code, name: str) -> bool:
    """Whether ``code`` or a function nested in it (a lambda, a comprehension
    before 3.12) reads the attribute ``name``."""
    if code is None:
        return False
    return name in code.co_names or any(
        _reads(const, name) for const in code.co_consts if inspect.iscode(const))


def seam_error(decoder_cls: type) -> Optional[str]:
    """Why ``decoder_cls`` cannot carry DNC, or None when it can."""
    name = getattr(decoder_cls, '__name__', repr(decoder_cls))
    if not isinstance(decoder_cls, type):
        return f'{name} is not an mmseg decode head (a BaseDecodeHead subclass)'
    known = next((NOT_CLS_SEG[c.__name__] for c in decoder_cls.__mro__
                  if c.__name__ in NOT_CLS_SEG), None)
    if known is not None:
        return f'{name} is {known}'
    if not issubclass(decoder_cls, BaseDecodeHead):
        return f'{name} is not an mmseg decode head (a BaseDecodeHead subclass)'
    owner = next(c for c in decoder_cls.__mro__ if 'cls_seg' in vars(c))
    if owner is not BaseDecodeHead:
        return (f'{name} classifies with its own `cls_seg` (from {owner.__name__}), '
                "not BaseDecodeHead's 1x1 conv")
    if not _names_cls_seg(decoder_cls):
        return f'{name} never calls `cls_seg`'
    return None


def resolve_decoder(decoder) -> type:
    """The decoder class named by ``decoder`` (a registry name or a class),
    checked to classify with BaseDecodeHead's ``cls_seg``."""
    if decoder is None:
        raise TypeError(
            "DNCDecodeHead needs `decoder`: the type the decode head had before, "
            "e.g. decode_head=dict(type='DNCDecodeHead', decoder='ASPPHead', ...).")
    if isinstance(decoder, str) and not decoder.strip():
        raise TypeError(
            "DNCDecodeHead(decoder=''): empty; give the type the decode head had "
            "before, e.g. decoder='ASPPHead'.")
    if not isinstance(decoder, (str, type)):
        raise TypeError(
            f'DNCDecodeHead(decoder={decoder!r}): a {type(decoder).__name__}; give '
            "the decode head type by its registry name (a str, e.g. 'ASPPHead') or "
            'as a class.')
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


def is_int(value) -> bool:
    """An int (numpy's too), never a bool: the one rule for integer settings."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A finite real (an int too), never a bool: the one rule for real settings."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


class Number:
    """A numeric setting: an int or a finite real (never a bool) in a range.

    ``low``/``high`` bound it; ``open_low``/``open_high`` exclude the bound.
    """

    def __init__(self, integer: bool = False, low=None, high=None, open_low=False,
                 open_high=False, hint: str = ''):
        self.integer, self.low, self.high = integer, low, high
        self.open_low, self.open_high, self.hint = open_low, open_high, hint

    def need(self) -> str:
        kind = 'an int' if self.integer else 'a finite number (int or float, not a bool)'
        lo = '' if self.low is None else ('(' if self.open_low else '[') + f'{self.low}'
        hi = '' if self.high is None else f'{self.high}' + (')' if self.open_high else ']')
        if lo and hi:
            where = f' in {lo}, {hi}'
        elif lo:
            where = f' {">" if self.open_low else ">="} {self.low}'
        elif hi:
            where = f' {"<" if self.open_high else "<="} {self.high}'
        else:
            where = ''
        return f'it must be{where}, {kind}{self.hint}' if where else f'it must be {kind}{self.hint}'

    def ok(self, value) -> bool:
        if not (is_int(value) if self.integer else is_real(value)):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)


class Choice:
    """A setting that takes one of a few values (compared by type and value)."""

    def __init__(self, *values, hint: str = ''):
        self.values, self.hint = values, hint

    def need(self) -> str:
        return f"use one of {', '.join(repr(v) for v in self.values)}{self.hint}"

    def ok(self, value) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)


# The most sub-centroids per class: 100 times the paper's K; far above it a
# head only costs memory and time (see _check_k_bound for the estimate).
MAX_SUBCENTROIDS = 1000

# Every DNC setting and what it may be: one rule per kind of value.
SETTINGS = dict(
    num_classes=Number(integer=True, low=1),
    momentum=Number(low=0, high=1, open_high=True, hint=' (the paper uses 0.999)'),
    sinkhorn_epsilon=Number(low=0, open_low=True, hint=' (the paper uses 0.05)'),
    sinkhorn_iterations=Number(integer=True, low=1, hint=' (the paper uses 3)'),
    update_from=Choice('correct', 'all', 'correct_or_all'),
    loss_ppc_weight=Number(low=0),
    loss_ppd_weight=Number(low=0),
    ppc_temperature=Number(low=0, open_low=True),
    score_norm=Choice('layernorm', 'temperature'),
    score_temperature=Number(low=0, open_low=True),
    projection=Choice(True, False, 'conv_relu_conv', 'conv_norm_relu_conv'),
    memory_size=Number(integer=True, low=0, hint=' (0 turns the memory off)'),
    memory_per_step=Number(integer=True, low=1),
    subcentroid_init=Choice('random', 'kmeans++'),
    momentum_warmup=Choice(True, False),
    restart_dead_below=Number(low=0, high=1, open_high=True,
                              hint=' (a fraction of the fair share 1/K; 0 turns it off)'),
    restart_dead_every=Number(integer=True, low=1),
    restart_on=Choice('worst', 'random'),
    update_assignment=Choice('sinkhorn_argmax', 'gumbel_sample'),
)


def per_class_k(num_subcentroids, num_classes: int) -> List[int]:
    """``num_subcentroids`` (an int, or one per class) as one K per class."""
    if is_int(num_subcentroids):
        return [int(num_subcentroids)] * num_classes
    return [int(k) for k in num_subcentroids]


def check_settings(*, num_subcentroids, **settings) -> List[int]:
    """Validate the DNC keys (by the head's keyword names); returns K per class.

    Every numeric setting follows one rule (:class:`Number`: ints are ints,
    reals are finite, bools are neither); every other, :class:`Choice`.
    """
    for key, value in settings.items():
        rule = SETTINGS[key]
        _check(rule.ok(value), key, value, rule.need())
    num_classes = settings['num_classes']
    if is_int(num_subcentroids):
        _check(num_subcentroids >= 1, 'num_subcentroids', num_subcentroids,
               'K must be >= 1 (the paper uses 10)')
        _check_k_bound(num_subcentroids, num_subcentroids, num_classes)
        return per_class_k(num_subcentroids, num_classes)
    _check(isinstance(num_subcentroids, (list, tuple)), 'num_subcentroids', num_subcentroids,
           'it must be an int K >= 1 (the paper uses 10) or a list of one int K per class')
    per_class = list(num_subcentroids)
    _check(len(per_class) == num_classes, 'num_subcentroids', num_subcentroids,
           f'a per-class list needs one K per class: {num_classes} '
           f'values, got {len(per_class)}')
    _check(all(is_int(k) and k >= 1 for k in per_class),
           'num_subcentroids', num_subcentroids, 'every K must be an int >= 1')
    _check_k_bound(max(per_class), num_subcentroids, num_classes)
    return per_class_k(per_class, num_classes)


def _check_k_bound(k_max: int, num_subcentroids, num_classes: int) -> None:
    """K at most :data:`MAX_SUBCENTROIDS`: every pixel is scored against all
    C*Kmax slots, so memory and time grow with K."""
    if k_max <= MAX_SUBCENTROIDS:
        return
    slots = num_classes * k_max
    per_pixel = slots * 4  # float32 bytes
    _check(False, 'num_subcentroids', num_subcentroids,
           f'K must be <= {MAX_SUBCENTROIDS} (the paper uses 10): every pixel of the '
           f"decoder's feature map is scored against all {num_classes} x {k_max} = "
           f'{slots:,} sub-centroids, {per_pixel / 2**20:,.1f} MiB of float32 scores per '
           f'pixel, {per_pixel * 64 * 64 / 2**20:,.0f} MiB per image at a 64x64 feature map '
           '(a 512x512 crop at output stride 8) before gradients, and the time of a step '
           'grows with it. If you really need more, raise '
           'mmseg_dnc.models.build_checks.MAX_SUBCENTROIDS in a module that your config '
           'lists in custom_imports')


_DERIVED = {}


def derived_class(base: type, decoder_cls: type, module) -> type:
    """``DNC<decoder>(base, decoder)``, made once per decoder and set as an
    attribute of ``module`` (where pickle finds it)."""
    if decoder_cls not in _DERIVED:
        name = f'DNC{decoder_cls.__name__}'
        cls = type(decoder_cls)(name, (base, decoder_cls), {
            '__module__': module.__name__, '__qualname__': name,
            '__doc__': f'{decoder_cls.__name__} with a DNC classifier; see {base.__name__}.'})
        _DERIVED[decoder_cls] = cls
        setattr(module, name, cls)
    return _DERIVED[decoder_cls]


def check_out_channels(out_channels: int, num_classes: int) -> None:
    """DNC needs one logit per class: a single-logit (sigmoid) head has none."""
    if out_channels != num_classes:
        raise ValueError(
            f'DNCDecodeHead: out_channels={out_channels} with num_classes={num_classes}: a '
            'single-logit (sigmoid) head has no classes to hold sub-centroids; set '
            'out_channels=num_classes (or drop it) and use a softmax loss.')


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
