# DNC on CamVid: CGNet + FCN, sized for a 2-core CPU with no pretrained weights.
# Parametric twin (same model, data, seed and schedule, 1x1 conv head):
#   configs/parametric/fcn_cgnet_camvid.py
# Only the decode head differs: its type, plus the DNC keys at the paper's settings,
# with each class's sub-centroids started from its own pixels (k-means++) and K per
# class from CamVid train's pixel frequency, both chosen in the ablation at this
# config's 600 iterations (measured: docs/results.md, "Ablation"; the records:
# bench/results/camvid_ablation.jsonl). The list is what
#   python tools/k_per_class.py configs/dnc/fcn_cgnet_camvid.py
# prints (K proportional to the square root of a class's labelled pixels, scaled to a
# mean of 10, rounded into [2, 20]: 106 sub-centroids in all);
# the paper's K=10 for every class is num_subcentroids=10.
_base_ = '../parametric/fcn_cgnet_camvid.py'
model = dict(
    decode_head=dict(
        type='DNCDecodeHead',
        decoder='FCNHead',
        # Sky, Building, Pole, Road, Pavement, Tree, SignSymbol, Fence, Car,
        # Pedestrian, Bicyclist
        num_subcentroids=[17, 20, 4, 20, 9, 13, 4, 4, 10, 3, 2],
        momentum=0.999,
        sinkhorn_epsilon=0.05,
        sinkhorn_iterations=3,
        subcentroid_init='kmeans++',
        loss_ppc_weight=0.01,
        loss_ppd_weight=0.001))
