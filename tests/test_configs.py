"""The shipped configs: each equals its parametric twin but for the decode head,
builds offline, and trains and tests through the tools on real samples."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

import mmseg
from mmseg.registry import MODELS
from mmseg_dnc.checkpoint import load_checkpoint_file
from mmseg_dnc.utils import replace_sync_bn
from .conftest import ROOT, TEST_DATA, run_tool

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'dnc', '*.py')))
# the ADE20K and Cityscapes ones; CamVid's is trained by tests/test_camvid_demo.py
BIG = [p for p in CONFIGS if 'camvid' not in p]
# every one is trained and tested through the tools (on smaller backbones: SHRINK)
THROUGH_TOOLS = BIG
NUM_CLASSES = dict(ade20k=150, cityscapes=19, camvid=11)
DNC_KEYS = {'type', 'decoder', 'num_subcentroids', 'momentum', 'sinkhorn_epsilon',
            'sinkhorn_iterations', 'subcentroid_init', 'loss_ppc_weight', 'loss_ppd_weight'}


def twin_of(path):
    """The parametric twin named in the config's header."""
    header = open(path).read().split('_base_')[0]
    twin = re.search(r'Parametric twin.*\n#\s+(\S+)', header).group(1)
    if twin.startswith('mmseg::'):  # where mmengine resolves 'mmseg::' to
        return Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                                        twin[len('mmseg::'):]))
    return Config.fromfile(osp.join(ROOT, twin))


def without_scope(node):
    """Drop the ``_scope_='mmseg'`` that mmengine writes into dicts inherited
    through 'mmseg::' (the twin, read from its file, has none)."""
    if isinstance(node, dict):
        return {k: without_scope(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return type(node)(without_scope(v) for v in node)
    return node


def test_ten_configs_and_camvid():
    names = {osp.basename(p)[:-3] for p in BIG}
    assert names == {f'{m}_{d}' for m in ('fcn_r101', 'deeplabv3_r101', 'upernet_swin-b',
                                          'deeplabv3plus_r101', 'segformer_mit-b5')
                     for d in ('ade20k', 'cityscapes')}
    assert len(THROUGH_TOOLS) == 10
    assert {osp.basename(p) for p in CONFIGS} - {osp.basename(p) for p in BIG} == {
        'fcn_cgnet_camvid.py', 'segformer_efficientnet-lite0_camvid.py',
        'segformer_efficientnet-lite0_camvid-L.py'}


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p))
def test_config_equals_twin_but_for_the_head(path):
    dnc = without_scope(Config.fromfile(path).to_dict())
    twin = without_scope(twin_of(path).to_dict())
    assert dnc.pop('custom_imports') == dict(imports=['mmseg_dnc'], allow_failed_imports=False)
    head, twin_head = dnc['model'].pop('decode_head'), twin['model'].pop('decode_head')
    assert head['type'] == 'DNCDecodeHead' and head['decoder'] == twin_head['type']
    if osp.basename(path) == 'fcn_cgnet_camvid.py':  # K per class from frequency, mean 10
        ks = head['num_subcentroids']
        assert len(ks) == 11 and 9.5 <= sum(ks) / len(ks) <= 10.5
    else:  # the paper's K
        assert head['num_subcentroids'] == 10
    assert head['momentum'] == 0.999
    assert head['subcentroid_init'] == 'kmeans++'
    assert {k: v for k, v in head.items() if k not in DNC_KEYS} == \
        {k: v for k, v in twin_head.items() if k != 'type'}
    twin.pop('custom_imports', None)
    # the checkpoint hook is named: mmseg_dnc's atomic one, same arguments
    assert dnc['default_hooks']['checkpoint'].pop('type') == 'SafeCheckpointHook'
    assert twin['default_hooks']['checkpoint'].pop('type') in ('CheckpointHook',
                                                                'SafeCheckpointHook')
    for cfg in (dnc, twin):  # mmengine records where a config came from
        cfg.pop('filename', None)
    assert dnc == twin
    dataset = path.rsplit('_', 1)[1][:-3].split('-')[0]  # camvid-L: schedule L
    assert head['num_classes'] == NUM_CLASSES[dataset]
    if 'ade20k' in path:  # 16 images per iteration in total: GPUs x batch
        gpus = int(re.search(r'_(\d+)xb\d+-', open(path).read()).group(1))
        assert gpus * dnc['train_dataloader']['batch_size'] == 16


@pytest.mark.parametrize('family', ['dnc', 'parametric'])
def test_camvid_schedule_l_is_s_for_longer_but_for_the_train_scale(family):
    def read(suffix):
        path = osp.join(ROOT, 'configs', family, f'segformer_efficientnet-lite0_camvid{suffix}.py')
        cfg = without_scope(Config.fromfile(path).to_dict())
        for key in ('filename', 'train_pipeline', 'max_iters', 'param_scheduler'):
            cfg.pop(key, None)
        pipeline = cfg['train_dataloader']['dataset'].pop('pipeline')
        return cfg, pipeline, cfg.pop('train_cfg'), cfg['default_hooks'].pop('checkpoint')
    short, short_pipeline, short_loop, short_checkpoint = read('')
    long, long_pipeline, long_loop, long_checkpoint = read('-L')
    assert (short_loop['max_iters'], long_loop['max_iters']) == (1200, 3600)
    assert (short_loop['val_interval'], long_loop['val_interval']) == (300, 600)
    assert (short_checkpoint['interval'], long_checkpoint['interval']) == (300, 600)
    # the one other difference: random scale 0.75-1.5 at S, 0.5-2.0 at L
    assert [t['type'] for t in short_pipeline] == [t['type'] for t in long_pipeline]
    assert short_pipeline[2]['ratio_range'] == (0.75, 1.5)
    assert long_pipeline[2]['ratio_range'] == (0.5, 2.0)
    assert [t for i, t in enumerate(short_pipeline) if i != 2] == \
        [t for i, t in enumerate(long_pipeline) if i != 2]
    assert short == long


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p))
def test_config_builds_offline(path):
    cfg = Config.fromfile(path)
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(replace_sync_bn(cfg.model))
    head = model.decode_head
    assert type(head).__name__ == 'DNC' + cfg.model.decode_head.decoder
    ks = cfg.model.decode_head.num_subcentroids
    ks = [ks] * cfg.model.decode_head.num_classes if isinstance(ks, int) else list(ks)
    assert head.num_subcentroids == ks
    assert head.sub_centroids.shape == (cfg.model.decode_head.num_classes, max(ks),
                                        cfg.model.decode_head.channels)


# the tool runs on smaller models of the same types (what they test is the config
# and tool path; the full builds are tested above): backbones of a few narrow
# layers, heads 64 channels wide
HEADS_64 = ['model.decode_head.channels=64']
RESNET_18 = ['model.backbone.depth=18', 'model.backbone.stem_channels=16',
             'model.backbone.base_channels=16', 'model.decode_head.in_channels=128',
             'model.auxiliary_head.in_channels=64', 'model.auxiliary_head.channels=64',
             *HEADS_64]
SWIN_TINY = ['model.backbone.embed_dims=32', 'model.backbone.depths=[1,1,1,1]',
             'model.backbone.num_heads=[1,2,4,8]', 'model.decode_head.in_channels=[32,64,128,256]',
             'model.auxiliary_head.in_channels=128', 'model.auxiliary_head.channels=64',
             *HEADS_64]
SHRINK = {
    **{f'{model}_r101_{data}.py': RESNET_18 for model in ('fcn', 'deeplabv3')
       for data in ('ade20k', 'cityscapes')},
    **{f'upernet_swin-b_{data}.py': SWIN_TINY for data in ('ade20k', 'cityscapes')},
    **{f'deeplabv3plus_r101_{data}.py': RESNET_18 + ['model.decode_head.c1_in_channels=16']
       for data in ('ade20k', 'cityscapes')},
    **{f'segformer_mit-b5_{data}.py': ['model.backbone.num_layers=[1,1,1,1]',
                                       'model.backbone.embed_dims=32',
                                       'model.decode_head.in_channels=[32,64,160,256]',
                                       *HEADS_64]
       for data in ('ade20k', 'cityscapes')},
}


def real_sample_options(path):
    """--cfg-options that point a config at the real samples in tests/data
    and shrink crop, batch and iterations for a 2-core CPU."""
    if 'ade20k' in path:
        root = osp.join(TEST_DATA, 'ade20k_sample', 'ADEChallengeData2016')
        prefix = ['data_prefix.img_path=images/validation',
                  'data_prefix.seg_map_path=annotations/validation']
    else:
        root = osp.join(TEST_DATA, 'cityscapes_sample')
        prefix = ['data_prefix.img_path=leftImg8bit/val', 'data_prefix.seg_map_path=gtFine/val']
    opts = ['model.pretrained=None', 'model.backbone.init_cfg=None', *SHRINK.get(
        osp.basename(path), []),
            'model.data_preprocessor.size=(64,64)', 'train_cfg.max_iters=2',
            'train_cfg.val_begin=100', 'default_hooks.checkpoint.interval=2',
            'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=2',  # BN in ASPP's image pool needs 2
            'train_dataloader.dataset.pipeline.2.scale=(256,96)',
            'train_dataloader.dataset.pipeline.3.crop_size=(64,64)']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
                 f'{loader}.dataset.data_root={root}'] + \
            [f'{loader}.dataset.{p}' for p in prefix]
    opts += [f'{loader}.dataset.pipeline.1.scale=(256,96)'
             for loader in ('val_dataloader', 'test_dataloader')]
    return opts


@pytest.mark.parametrize('path', THROUGH_TOOLS, ids=lambda p: osp.basename(p))
def test_config_trains_and_tests_on_real_samples(path, tmp_path):
    opts = real_sample_options(path)
    train = run_tool('train.py', path, '--work-dir', str(tmp_path), '--cfg-options', *opts)
    log = train.stdout + train.stderr
    assert 'Iter(train) [2/2]' in log and 'decode.loss_ppc' in log
    test = run_tool('test.py', path, str(tmp_path / 'iter_2.pth'), '--work-dir',
                    str(tmp_path / 'test'), '--cfg-options', *opts)
    out = test.stdout + test.stderr
    images = 3 if 'ade20k' in path else 1
    assert f'Iter(test) [{images}/{images}]' in out and 'mIoU' in out
    # the per-class table names the dataset's classes
    assert ('wall' in out) if 'ade20k' in path else ('road' in out)


def test_ade20k_checkpoint_transfers_to_cityscapes(tmp_path):
    """The paper's transfer through the tools: DeepLabV3-DNC trained on ADE20K
    (150 classes), then `load_from` into the Cityscapes config (19)."""
    ade = osp.join(ROOT, 'configs', 'dnc', 'deeplabv3_r101_ade20k.py')
    run_tool('train.py', ade, '--work-dir', str(tmp_path / 'ade'), '--cfg-options',
             *real_sample_options(ade))
    ckpt = str(tmp_path / 'ade' / 'iter_2.pth')
    cityscapes = osp.join(ROOT, 'configs', 'dnc', 'deeplabv3_r101_cityscapes.py')
    # lr 0: the two steps change no weight, so what was loaded can be compared
    proc = run_tool('train.py', cityscapes, '--work-dir', str(tmp_path / 'cs'), '--cfg-options',
                    *real_sample_options(cityscapes), f'load_from={ckpt}',
                    'optim_wrapper.optimizer.lr=0', 'param_scheduler.0.eta_min=0')
    log = proc.stdout + proc.stderr
    assert ("decode_head: the checkpoint's sub-centroids are (150, 10, 64) (classes, K, "
            "channels), this model's (19, 10, 64); sub_centroids, subcentroid_seeded, "
            'score_norm.weight, score_norm.bias are re-initialised') in log
    mismatches = re.findall(r'size mismatch for (\S+):', log)
    assert sorted(mismatches) == ['auxiliary_head.conv_seg.bias', 'auxiliary_head.conv_seg.weight']
    source = load_checkpoint_file(ckpt)['state_dict']
    target = load_checkpoint_file(str(tmp_path / 'cs' / 'iter_2.pth'))['state_dict']
    # every conv and norm weight of backbone, decoder and auxiliary head but the
    # latter's classifier came from the ADE20K checkpoint
    weights = [k for k in target if k.endswith('.weight') and 'sub_centroids' not in k]
    loaded = [k for k in weights if torch.equal(target[k], source.get(k, torch.empty(0)))]
    assert sorted(set(weights) - set(loaded)) == ['auxiliary_head.conv_seg.weight',
                                                  'decode_head.score_norm.weight']
    assert target['decode_head.sub_centroids'].shape == (19, 10, 64)
