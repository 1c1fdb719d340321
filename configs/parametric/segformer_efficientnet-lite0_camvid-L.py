# Schedule L: segformer_efficientnet-lite0_camvid.py for 3x as long (3,600 iterations,
# about 40 epochs, about 36 minutes on 2 CPU cores); everything else the same.
_base_ = './segformer_efficientnet-lite0_camvid.py'
max_iters = 3600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=100, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=600)
default_hooks = dict(checkpoint=dict(interval=600))
