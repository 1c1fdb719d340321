# Schedule L (3,600 iterations, 3x S) of configs/dnc/segformer_efficientnet-lite0_camvid.py;
# everything else the same. Only the decode head differs from the
# Parametric twin:
#   configs/parametric/segformer_efficientnet-lite0_camvid-L.py
_base_ = ['../parametric/segformer_efficientnet-lite0_camvid-L.py']
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
