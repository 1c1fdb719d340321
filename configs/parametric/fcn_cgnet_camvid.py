# CGNet + FCN head on CamVid, parametric 1x1 conv head, sized for a 2-core CPU
# and no pretrained weights (CGNet is built to train from scratch): half
# resolution (240x180, 176x240 crops), 8 images per iteration, 600 iterations
# (about 13 epochs), Adam as in mmseg's CGNet configs.
# The DNC twin: configs/dnc/fcn_cgnet_camvid.py (only the decode head differs).
_base_ = [
    'mmseg::_base_/models/cgnet.py', '../_base_/datasets/camvid.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_dnc'], allow_failed_imports=False)
crop_size = (176, 240)
norm_cfg = dict(type='BN', eps=1e-03, requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(
        num_classes=11,
        norm_cfg=norm_cfg,
        loss_decode=dict(
            _delete_=True, type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=0.002, eps=1e-08, weight_decay=0.0005))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=1e-4, power=0.9, by_epoch=False, begin=50, end=max_iters)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=150)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, interval=150, max_keep_ckpts=2,
                    save_best='mIoU'))
randomness = dict(seed=0)
