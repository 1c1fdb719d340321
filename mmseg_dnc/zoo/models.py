"""Which mmseg config stands for each decode head, and how it is shrunk.

Every decode head type in mmseg 1.2.2's registry is mapped to mmseg's own
model config that uses it (``mmseg::_base_/models/*.py`` where mmseg has one,
else the model of a full mmseg config), the head that DNC replaces, and a
note on the head's other classifiers. :func:`tiny_dnc_model_cfg` shrinks the
model for a CPU (a quarter-width ResNet-18 instead of ResNet-50, one block
per transformer stage, 16 channels in the heads), sets CamVid's 11 classes,
and swaps DNC in: ``type='DNCDecodeHead'``,
``decoder=`` the type it had, nothing else.
"""
from typing import Dict, List, NamedTuple

from mmengine.config import ConfigDict
from mmengine.hub import get_config

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from ..utils import replace_sync_bn

HEAD_CHANNELS = 16  # `channels` of every shrunk head: D of the DNC embedding
CAMVID_CLASSES = 11  # the heads classify what the check trains on


class ZooEntry(NamedTuple):
    config: str  # mmseg's model config for the head
    where: str  # which head of the config DNC replaces: 'decode_head', or 'decode_head.1'
    note: str = ''  # the head's other classifiers, and what becomes of them
    image_size: int = 64  # the square input its training step needs at least
    batch_size: int = 2  # BN of a 1x1 pooled map (ASPP's image pool) needs 2


def _base(name: str) -> str:
    return f'mmseg::_base_/models/{name}.py'


ZOO: Dict[str, ZooEntry] = {
    'ANNHead': ZooEntry(_base('ann_r50-d8'), 'decode_head'),
    'APCHead': ZooEntry(_base('apcnet_r50-d8'), 'decode_head'),
    'ASPPHead': ZooEntry(_base('deeplabv3_r50-d8'), 'decode_head'),
    'CCHead': ZooEntry(_base('ccnet_r50-d8'), 'decode_head'),
    'DAHead': ZooEntry(_base('danet_r50-d8'), 'decode_head',
                       'PAM/CAM deep-supervision classifiers stay 1x1 convs, with '
                       'their losses; prediction is cls_seg\'s (DNC)'),
    'DDRHead': ZooEntry('mmseg::ddrnet/ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-'
                        '1024x1024.py', 'decode_head',
                        'aux_cls_seg (training only) stays a 1x1 conv, with its loss'),
    'DMHead': ZooEntry(_base('dmnet_r50-d8'), 'decode_head'),
    'DNLHead': ZooEntry(_base('dnl_r50-d8'), 'decode_head'),
    'DPTHead': ZooEntry(_base('dpt_vit-b16'), 'decode_head'),
    'DepthwiseSeparableASPPHead': ZooEntry(_base('deeplabv3plus_r50-d8'), 'decode_head'),
    'DepthwiseSeparableFCNHead': ZooEntry(_base('fast_scnn'), 'decode_head'),
    'EMAHead': ZooEntry(_base('emanet_r50-d8'), 'decode_head'),
    'EncHead': ZooEntry(_base('encnet_r50-d8'), 'decode_head',
                        'the SE-loss branch (class presence) is unchanged'),
    'FCNHead': ZooEntry(_base('fcn_r50-d8'), 'decode_head'),
    'FPNHead': ZooEntry(_base('fpn_r50'), 'decode_head'),
    'GCHead': ZooEntry(_base('gcnet_r50-d8'), 'decode_head'),
    'ISAHead': ZooEntry(_base('isanet_r50-d8'), 'decode_head'),
    'IterativeDecodeHead': ZooEntry(
        'mmseg::knet/knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py', 'decode_head'),
    # its image pool is a fixed 49x49 average over the stride-8 features
    'LRASPPHead': ZooEntry(_base('lraspp_m-v3-d8'), 'decode_head', image_size=392,
                           batch_size=1),
    'LightHamHead': ZooEntry('mmseg::segnext/segnext_mscan-t_1xb16-adamw-160k_ade20k-'
                             '512x512.py', 'decode_head'),
    'Mask2FormerHead': ZooEntry('mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-'
                                '512x512.py', 'decode_head'),
    'MaskFormerHead': ZooEntry('mmseg::maskformer/maskformer_r50-d32_8xb2-160k_ade20k-'
                               '512x512.py', 'decode_head'),
    'NLHead': ZooEntry(_base('nonlocal_r50-d8'), 'decode_head'),
    'OCRHead': ZooEntry(_base('ocrnet_r50-d8'), 'decode_head.1',
                        'cascade: DNC on the OCR stage; the FCN stage before it (soft '
                        'object regions, with its loss) stays parametric'),
    'PIDHead': ZooEntry('mmseg::pidnet/pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
                        'decode_head', 'the P branch (p_cls_seg) and the boundary branch '
                        '(d_cls_seg, 1 channel), training only, stay 1x1 convs, with '
                        'their losses'),
    'PSAHead': ZooEntry(_base('psanet_r50-d8'), 'decode_head'),
    'PSPHead': ZooEntry(_base('pspnet_r50-d8'), 'decode_head'),
    'PointHead': ZooEntry(_base('pointrend_r50'), 'decode_head.1'),
    'SETRMLAHead': ZooEntry(_base('setr_mla'), 'decode_head'),
    'SETRUPHead': ZooEntry(_base('setr_naive'), 'decode_head'),
    'STDCHead': ZooEntry(_base('stdc'), 'auxiliary_head.2'),
    'SegformerHead': ZooEntry(_base('segformer_mit-b0'), 'decode_head'),
    'SegmenterMaskTransformerHead': ZooEntry(_base('segmenter_vit-b16_mask'), 'decode_head'),
    'SideAdapterCLIPHead': ZooEntry(_base('san_vit-b16'), 'decode_head'),
    'UPerHead': ZooEntry(_base('upernet_r50'), 'decode_head'),
    'VPDDepthHead': ZooEntry(_base('vpd_sd'), 'decode_head'),
}


def decode_heads_in_registry() -> List[str]:
    """Every decode head type in mmseg's MODELS registry (DNC's own aside):
    the BaseDecodeHead subclasses and the mask-classification heads."""
    names = []
    for name, cls in MODELS.module_dict.items():
        if not isinstance(cls, type) or name.startswith('DNC'):
            continue
        if issubclass(cls, BaseDecodeHead) or name in ('MaskFormerHead', 'Mask2FormerHead'):
            names.append(name)
    return sorted(names)


def head_at(node, where: str):
    """The head at ``where`` ('decode_head', 'decode_head.1', ...) of a model
    or of its config (a ConfigDict reads keys as attributes too)."""
    for part in where.split('.'):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


# ResNet-50's stage widths -> those of a ResNet-18 a quarter as wide
_R18 = {256: 16, 512: 32, 1024: 64, 2048: 128}


def _heads(model: ConfigDict) -> List[ConfigDict]:
    heads = []
    for key in ('decode_head', 'auxiliary_head'):
        node = model.get(key)
        heads += list(node) if isinstance(node, (list, tuple)) else [node] if node else []
    return heads


def _shrink_backbone(model: ConfigDict) -> None:
    """A CPU-sized backbone of the same type; head inputs follow its widths."""
    backbone = model.backbone
    kind = backbone.type
    backbone.pop('init_cfg', None)
    if kind == 'ResNetV1c':
        backbone.update(depth=18, stem_channels=16, base_channels=16)
        for head in _heads(model):
            head.in_channels = _R18.get(head.in_channels, head.in_channels) \
                if isinstance(head.in_channels, int) else \
                [_R18.get(c, c) for c in head.in_channels]
            if 'c1_in_channels' in head:  # DeepLabV3+'s low-level input
                head.c1_in_channels = _R18[head.c1_in_channels]
        if model.get('neck'):  # FPN
            model.neck.in_channels = [_R18[c] for c in model.neck.in_channels]
            model.neck.out_channels = HEAD_CHANNELS
            model.decode_head.in_channels = [HEAD_CHANNELS] * len(model.neck.in_channels)
    elif kind == 'VisionTransformer':
        levels = [3] if isinstance(backbone.out_indices, int) else list(range(4))
        backbone.update(img_size=(64, 64), embed_dims=32, num_layers=4, num_heads=2,
                        mlp_ratio=2, out_indices=levels if len(levels) > 1 else 3,
                        drop_path_rate=0.0)
        if model.get('neck'):  # SETR-MLA's MLANeck
            model.neck.update(in_channels=[32] * 4, out_channels=HEAD_CHANNELS)
            width = HEAD_CHANNELS
        else:
            width = 32
        for head in _heads(model):
            head.in_channels = width if isinstance(head.in_channels, int) else \
                [width] * len(head.in_channels)
            if head.type == 'DPTHead':
                head.update(embed_dims=32, post_process_channels=[8, 16, 32, 32])
            if 'mla_channels' in head:  # SETR-MLA: channels = 4 x mla_channels
                head.mla_channels = HEAD_CHANNELS // 4
    elif kind == 'MixVisionTransformer':
        backbone.update(num_layers=[1, 1, 1, 1])
    elif kind == 'MSCAN':
        backbone.update(depths=[1, 1, 1, 1], drop_path_rate=0.0)
    elif kind in ('PIDNet', 'DDRNet'):  # the head reads 4 x the backbone's channels
        backbone.update(channels=8, ppm_channels=16)
        model.decode_head.in_channels = 32
    # FastSCNN and MobileNetV3 are already cheap


def tiny_dnc_model_cfg(head_type: str, dnc: bool = True) -> ConfigDict:
    """mmseg's model for ``head_type`` (:data:`ZOO`), CPU-sized, with DNC
    swapped in where the head is (``dnc=False``: the parametric twin)."""
    entry = ZOO[head_type]
    model = get_config(entry.config).model
    replace_sync_bn(model)
    model.pretrained = None
    model.data_preprocessor.pop('size', None)
    model.data_preprocessor.size_divisor = 32
    _shrink_backbone(model)
    for head in _heads(model):
        head.channels = HEAD_CHANNELS
        if head.get('num_classes', 0) > 2:  # not STDC's boundary head
            head.num_classes = CAMVID_CLASSES
            losses = head.loss_decode if isinstance(head.loss_decode, list) \
                else [head.loss_decode]
            for loss in losses:  # Cityscapes' 19 class weights (PIDNet, DDRNet)
                loss.pop('class_weight', None)
        if head.type == 'LightHamHead':  # GroupNorm of 32 groups over both
            head.update(channels=32, ham_channels=32)
    target = head_at(model, entry.where)
    assert target.type == head_type, (entry, target.type)
    if dnc:
        target.update(type='DNCDecodeHead', decoder=head_type)
    return model

