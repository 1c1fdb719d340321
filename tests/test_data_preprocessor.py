"""ChannelsLastSegDataPreProcessor: mmseg's batch, laid out channels-last, and
a network that then runs in that layout with its parameters untouched."""
import copy

import torch
from mmengine.config import Config
from mmengine.structures import PixelData

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CONFIG = 'configs/dnc/segformer_efficientnet-lite0_camvid.py'


def _data(sizes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for h, w in sizes:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 11, (1, h, w), generator=gen, dtype=torch.uint8).long())
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(sample)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
                        for h, w in sizes], data_samples=samples)


def _preprocessors():
    cfg = Config.fromfile(CONFIG).model.data_preprocessor
    assert cfg.type == 'ChannelsLastSegDataPreProcessor'  # what the configs train with
    plain = MODELS.build({**cfg, 'type': 'SegDataPreProcessor'})
    return MODELS.build(cfg), plain


def test_the_batch_is_mmseg_s_batch_in_channels_last_memory():
    channels_last, plain = _preprocessors()
    for training, sizes in ((True, [(240, 320), (200, 300)]), (False, [(360, 480)])):
        data = _data(sizes)
        got = channels_last(copy.deepcopy(data), training)
        want = plain(copy.deepcopy(data), training)
        assert got['inputs'].shape == want['inputs'].shape
        assert torch.equal(got['inputs'], want['inputs'])  # padding and normalisation too
        assert got['inputs'].is_contiguous(memory_format=torch.channels_last)
        assert not want['inputs'].is_contiguous(memory_format=torch.channels_last)
        b, c, h, w = got['inputs'].shape
        # (B, H, W, C) in memory: one pixel's 3 channels are neighbours
        assert got['inputs'].stride() == (h * w * c, 1, w * c, c)


def _gradients(model, data):
    """Losses and parameter gradients of one training forward and backward."""
    batch = model.data_preprocessor(copy.deepcopy(data), True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    sum(v for k, v in losses.items() if k.startswith('decode.loss')).backward()
    return losses, {n: p.grad for n, p in model.named_parameters()}


def test_the_network_runs_channels_last_with_the_same_losses_and_gradients():
    cfg = Config.fromfile(CONFIG).model  # the shipped ImageNet weights
    cfg.backbone.drop_path_rate = cfg.decode_head.dropout_ratio = 0.0
    # no k-means++ draw: a seed picked by D^2 sampling may flip at float rounding
    cfg.decode_head.subcentroid_init = 'random'
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    plain_cfg = copy.deepcopy(cfg)
    plain_cfg.data_preprocessor.type = 'SegDataPreProcessor'
    plain = MODELS.build(plain_cfg)
    plain.load_state_dict(model.state_dict())
    data = _data([(240, 320), (240, 320)], seed=1)

    feats = model.extract_feat(model.data_preprocessor(copy.deepcopy(data), True)['inputs'])
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
    # DNC's logits come out as a 1x1 conv's would: channels-last here, mmseg's
    # layout on mmseg's batch (argmax over C and the loss are slow on the other)
    for net, channels_last in ((model, True), (plain, False)):
        with torch.no_grad():
            logits = net.decode_head(net.extract_feat(
                net.data_preprocessor(copy.deepcopy(data), True)['inputs']))
        assert logits.shape == (2, 11, 60, 80)
        assert logits.is_contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    losses, grads = _gradients(model, data)
    plain_losses, plain_grads = _gradients(plain, data)
    for key in ('decode.loss_ce', 'decode.loss_ppc', 'decode.loss_ppd'):
        torch.testing.assert_close(losses[key], plain_losses[key], rtol=1e-5, atol=1e-7)
    # float32 rounding only. Each layout is off float64's gradient (measured
    # once: 0.2% plain, 0.7% channels-last, overall: its kernels sum in
    # another order), and the biases of convolutions that feed a
    # batch norm have a true gradient of 0, so only rounding there. A gradient
    # in the wrong layout would be O(1) off.
    flat = torch.cat([g.flatten() for g in grads.values()])
    plain_flat = torch.cat([g.flatten() for g in plain_grads.values()])
    assert (flat - plain_flat).norm() < 0.02 * plain_flat.norm()
    for name, grad in grads.items():
        want = plain_grads[name]
        assert (grad - want).norm() <= 0.05 * want.norm() + 1e-4 * plain_flat.norm(), name
        # parameters and their gradients keep their own layout (the optimizer's
        # state and DDP's buckets rely on it)
        assert grad.is_contiguous() and model.get_parameter(name).is_contiguous(), name
