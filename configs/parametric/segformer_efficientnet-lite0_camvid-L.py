# Schedule L: segformer_efficientnet-lite0_camvid.py for 3x as long (3,600 iterations,
# about 40 epochs, about 36 minutes on 2 CPU cores); everything else the same but the
# random scale range of training.
_base_ = './segformer_efficientnet-lite0_camvid.py'
# random scale 0.5-2.0 (mmseg's long schedules' range), where L was measured; S trains at
# configs/_base_/datasets/camvid_full.py's 0.75-1.5
train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations'),
    dict(type='RandomResize', scale=(480, 360), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(240, 320), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
max_iters = 3600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=100, end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=600)
default_hooks = dict(checkpoint=dict(interval=600))
