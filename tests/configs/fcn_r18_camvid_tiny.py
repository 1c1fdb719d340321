# A CPU-sized training config for tests: mmseg's FCN base model with a
# ResNet-18 backbone at a quarter of its width (stages 16..128 channels) and the
# DNC head, on real CamVid images at 96x96 crops. Not narrower: the tests that
# kill a run mid-save cut its checkpoint at 1 MiB, and this one's is ~3 MB.
# data_root is set by the tests (--cfg-options) to tests/data/camvid.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py'
]
custom_imports = dict(imports=['mmseg_dnc'], allow_failed_imports=False)
crop_size = (96, 96)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(depth=18, stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(type='DNCDecodeHead', decoder='FCNHead', in_channels=128,
                     channels=32, num_convs=1, num_classes=11, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=16, num_classes=11, norm_cfg=norm_cfg))
data_root = 'data/camvid'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(120, 90), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='CamVidDataset', data_root=data_root,
                 data_prefix=dict(img_path='train', seg_map_path='trainannot'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CamVidDataset', data_root=data_root,
                 data_prefix=dict(img_path='val', seg_map_path='valannot'),
                 indices=4, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
train_cfg = dict(type='IterBasedTrainLoop', max_iters=4, val_interval=4)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=2))
randomness = dict(seed=0)
