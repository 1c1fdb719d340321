# DNC on CamVid: CGNet + FCN, sized for a 2-core CPU with no pretrained weights.
# Parametric twin (same model, data, seed and schedule, 1x1 conv head):
#   configs/parametric/fcn_cgnet_camvid.py
# Only the decode head differs: its type, plus the DNC keys at the paper's settings,
# with each class's sub-centroids started from its own pixels (k-means++): +2.8 mIoU
# over random starts in this 600-iteration schedule (README, "Ablation").
_base_ = '../parametric/fcn_cgnet_camvid.py'
model = dict(
    decode_head=dict(
        type='DNCDecodeHead',
        decoder='FCNHead',
        num_subcentroids=10,
        momentum=0.999,
        sinkhorn_epsilon=0.05,
        sinkhorn_iterations=3,
        subcentroid_init='kmeans++',
        loss_ppc_weight=0.01,
        loss_ppd_weight=0.001))
