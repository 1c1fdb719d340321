# DNC on Cityscapes: DeepLabV3, ResNet-101-D8, 512x1024 crops, 80k iterations, 4 GPUs x 2 images.
# Parametric twin (same model, data and schedule, 1x1 conv head):
#   mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py
# Only the decode head differs: its type, plus the DNC keys at the paper's settings
# and sub-centroids started from their own class's pixels (k-means++): at this schedule
# the start's weight in a sub-centroid vanishes (0.999^n after n updates: e^-80 at 80k)
# (and checkpoints are written by mmseg_dnc's SafeCheckpointHook: atomic saves).
_base_ = 'mmseg::deeplabv3/deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmseg_dnc'], allow_failed_imports=False)
model = dict(
    decode_head=dict(
        type='DNCDecodeHead',
        decoder='ASPPHead',
        num_subcentroids=10,
        momentum=0.999,
        sinkhorn_epsilon=0.05,
        sinkhorn_iterations=3,
        subcentroid_init='kmeans++',
        loss_ppc_weight=0.01,
        loss_ppd_weight=0.001))
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))
