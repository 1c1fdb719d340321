"""Numerics of training: mixed precision (bfloat16 on the CPU) for a hundred
steps and more, a class with a single pixel, an image smaller than the crop, and a
batch with non-finite features."""
import glob
import json
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmseg.registry import DATASETS, MODELS

from mmseg_dnc.checkpoint import load_checkpoint_file as load_state
from mmseg_dnc.engine import CPUAmpOptimWrapper
from mmseg_dnc.utils import adapt_to_cpu
from .conftest import CAMVID, TINY_CONFIG, TINY_DATA, build_model, make_batch, run_tool

C = 5


def scalars(work_dir):
    """mmengine's per-iteration log: one dict per logged training step."""
    path, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    return [row for row in map(json.loads, open(path)) if 'loss' in row]


def test_amp_on_cpu_120_steps_stay_finite(tmp_path):
    # ResNet-18 at an eighth of its width (the tiny config's quarter, halved):
    # CPUs without native bfloat16 (AVX2 only) run a bfloat16 convolution on a
    # slow generic path, about 25x a float32 one (the full width took 10 minutes)
    proc = run_tool('train.py', TINY_CONFIG, '--amp', '--work-dir', str(tmp_path),
                    '--cfg-options', 'train_cfg.max_iters=120', 'train_cfg.val_interval=120',
                    'model.backbone.stem_channels=8', 'model.backbone.base_channels=8',
                    'model.decode_head.in_channels=64', 'model.auxiliary_head.in_channels=32',
                    'default_hooks.checkpoint.interval=120', 'model.decode_head.memory_size=16',
                    *TINY_DATA)
    assert 'mixed precision runs as bfloat16 autocast (CPUAmpOptimWrapper)' in proc.stdout
    rows = scalars(tmp_path)
    assert len(rows) == 120
    for key in ('loss', 'decode.loss_ce', 'decode.loss_ppc', 'decode.loss_ppd', 'aux.loss_ce'):
        assert all(math.isfinite(row[key]) for row in rows), key
    # it learns: the last 30 steps' CE is below the first 30's
    first, last = (sum(r['decode.loss_ce'] for r in part) / 30 for part in (rows[:30], rows[-30:]))
    assert last < 0.8 * first, (first, last)
    state = load_state(str(tmp_path / 'iter_120.pth'))['state_dict']
    sub = state['decode_head.sub_centroids']
    assert sub.dtype == torch.float32 and torch.isfinite(sub).all()
    torch.testing.assert_close(sub.norm(dim=-1), torch.ones(11, 10))
    assert torch.isfinite(state['decode_head.memory']).all()
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_cpu_amp_wrapper_runs_the_forward_in_bfloat16():
    model = build_model('FCNHead', C)
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    with wrapper.optim_context(model):
        assert model.decode_head.convs(torch.randn(1, model.decode_head.in_channels, 4, 4)).dtype == torch.bfloat16
    state = wrapper.state_dict()
    wrapper.load_state_dict(dict(state, loss_scaler={'scale': 65536.0}))  # a GPU AMP checkpoint
    with pytest.raises(ValueError, match="mixed precision on the CPU is bfloat16"):
        CPUAmpOptimWrapper(dtype='float16', optimizer=torch.optim.SGD(model.parameters(), lr=1))


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU rewrite applies without CUDA')
def test_amp_config_is_rewritten_for_the_cpu_or_refused():
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                         optimizer=dict(type='SGD', lr=0.01))))
    adapt_to_cpu(cfg)
    assert cfg.optim_wrapper == dict(type='CPUAmpOptimWrapper',
                                     optimizer=dict(type='SGD', lr=0.01))
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper', dtype='float16')))
    with pytest.raises(ValueError, match="float16 autocast needs a GPU.*dtype='bfloat16'"):
        adapt_to_cpu(cfg)


def test_a_class_with_a_single_pixel():
    # the reference's random start: the update of an existing sub-centroid is tested
    model = build_model('FCNHead', C, update_from='all', momentum=0.9,
                        subcentroid_init='random')
    head = model.decode_head
    torch.manual_seed(0)
    emb = F.normalize(torch.randn(1, 32, 4, 4), dim=1)
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    label[0, 0, 2, 3] = 3  # one pixel of class 3, fifteen of class 0
    sub_scores = torch.einsum('bdhw,ckd->bckhw', emb, head.sub_centroids).flatten(1, 2)
    before = head.sub_centroids.clone()
    losses = head.learn_subcentroids(emb, sub_scores, torch.zeros(1, C, 4, 4), label)
    assert all(torch.isfinite(v) for v in losses.values())
    x = emb[0, :, 2, 3]
    nearest = int((before[3] @ x).argmax())
    assert nearest != 0  # a plain argmax of the uniform plan row would pick 0
    expected = F.normalize(0.9 * before[3, nearest] + 0.1 * x, dim=0)
    torch.testing.assert_close(head.sub_centroids[3, nearest], expected)
    others = [k for k in range(10) if k != nearest]
    assert torch.equal(head.sub_centroids[3, others], before[3, others])
    assert torch.equal(head.sub_centroids[[1, 2, 4]], before[[1, 2, 4]])


def test_image_smaller_than_the_crop(tmp_path):
    # CamVid frames shrunk to 64x48 before the 96x96 crop: the crop keeps the
    # whole image and the data preprocessor pads it, labels with 255
    config = tmp_path / 'small_images.py'
    config.write_text(
        f"_base_ = '{TINY_CONFIG}'\n"
        "train_pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),\n"
        "    dict(type='Resize', scale=(64, 48), keep_ratio=True),\n"
        "    dict(type='RandomCrop', crop_size=(96, 96), cat_max_ratio=0.75),\n"
        "    dict(type='PackSegInputs')]\n"
        "train_dataloader = dict(dataset=dict(pipeline=train_pipeline))\n")
    run_tool('train.py', str(config), '--work-dir', str(tmp_path / 'run'), '--cfg-options',
             'train_cfg.max_iters=4', 'train_cfg.val_interval=100', *TINY_DATA)
    rows = scalars(tmp_path / 'run')
    assert len(rows) == 4 and all(math.isfinite(r['loss']) for r in rows)
    state = load_state(str(tmp_path / 'run' / 'iter_4.pth'))['state_dict']
    sub = state['decode_head.sub_centroids']
    torch.testing.assert_close(sub.norm(dim=-1), torch.ones(11, 10))
    # what the model was given: the 48x64 frame in the corner of a 96x96 batch,
    # the image padded with 0, the labels with 255 (ignored)
    cfg = Config.fromfile(str(config))
    cfg.train_dataloader.dataset.data_root = CAMVID
    sample = DATASETS.build(cfg.train_dataloader.dataset)[0]
    batch = MODELS.build(cfg.model.data_preprocessor)(
        dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]), training=True)
    image, label = batch['inputs'][0], batch['data_samples'][0].gt_sem_seg.data[0]
    assert image.shape == (3, 96, 96) and label.shape == (96, 96)
    assert (label[48:] == 255).all() and (label[:, 64:] == 255).all()
    assert (image[:, 48:] == 0).all() and (image[:, :, 64:] == 0).all()
    assert (label[:48, :64] < 11).float().mean() > 0.9  # the frame's own labels


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_non_finite_features_skip_the_update_and_say_so(value, warnings_logged):
    model = build_model('ASPPHead', C, update_from='all')
    head = model.decode_head
    emb = F.normalize(torch.randn(2, 32, 4, 4), dim=1)
    emb[1, :, 3, 0] = value
    before = head.sub_centroids.clone()
    head.learn_subcentroids(emb, torch.zeros(2, C * 10, 4, 4), torch.zeros(2, C, 4, 4),
                            torch.randint(0, C, (2, 1, 4, 4)))
    assert torch.equal(before, head.sub_centroids)
    assert [r.getMessage() for r in warnings_logged] == [
        'DNCDecodeHead: non-finite decoder features in this batch; sub-centroids not '
        'updated this step.']
    # the next finite batch updates again
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    model.train_step(make_batch(torch.randint(0, C, (2, 64, 64))), optim)
    assert not torch.equal(before, head.sub_centroids)
