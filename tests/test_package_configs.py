"""``mmseg_dnc::`` config paths in this checkout (in a ``_base_``, on the
tools' command line and through mmengine's ``mmengine.hub``), and the model
index that `mim search` reads. The same from an installed wheel:
tests/test_wheel.py."""
import glob
import os
import os.path as osp
import socket

import mmengine.hub
import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg_dnc import DNCDecodeHead
from mmseg_dnc.engine import load_config
from mmseg_dnc.package_configs import resolve_config
from mmseg_dnc.tools.train import parse_args
from .conftest import CAMVID, ROOT

CAMVID_CONFIG = 'mmseg_dnc::dnc/fcn_cgnet_camvid.py'
# its backbone names ImageNet weights to download (open-mmlab://resnet101_v1c)
DEEPLAB_CONFIG = 'mmseg_dnc::dnc/deeplabv3_r101_ade20k.py'
DNC_CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'dnc', '*.py')))


def test_prefix_names_the_checkouts_configs():
    assert resolve_config(CAMVID_CONFIG) == osp.join(ROOT, 'configs', 'dnc', 'fcn_cgnet_camvid.py')
    assert resolve_config('configs/dnc/x.py') == 'configs/dnc/x.py'  # a file path stays
    # another package's prefix, as mmengine resolves it in a _base_
    assert resolve_config('mmseg::_base_/default_runtime.py').endswith(
        osp.join('mmseg', '.mim', 'configs', '_base_', 'default_runtime.py'))


def test_base_takes_mmsegs_registry_scope(tmp_path):
    """A config inheriting 'mmseg_dnc::...' builds its dataset from mmengine's
    root registry, as the Runner does (scope 'mmseg_dnc' would find nothing)."""
    user = tmp_path / 'my_config.py'
    user.write_text(f"_base_ = '{CAMVID_CONFIG}'\n")
    cfg = Config.fromfile(str(user))
    assert cfg.model.decode_head.type == 'DNCDecodeHead'
    dataset = cfg.train_dataloader.dataset
    assert dataset._scope_ == 'mmseg'
    init_default_scope('mmseg')
    dataset.update(data_root=CAMVID, pipeline=[])
    assert len(DATASETS.build(dataset)) == len(os.listdir(osp.join(CAMVID, 'train')))


def test_tools_take_the_prefix():
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    args = parse_args([CAMVID_CONFIG, '--cfg-options',
                       *(f'{name}.dataset.data_root={CAMVID}' for name in loaders)])
    cfg = load_config(args, loaders=loaders)
    assert cfg.model.decode_head.type == 'DNCDecodeHead'
    assert cfg.work_dir == osp.join('./work_dirs', 'fcn_cgnet_camvid')


def test_mmengine_hub_get_config_takes_the_prefix():
    """mmengine's API for package configs, as for 'mmseg::' (the same checkout file)."""
    cfg = mmengine.hub.get_config(DEEPLAB_CONFIG)
    assert cfg.filename == resolve_config(DEEPLAB_CONFIG)
    assert cfg.model.decode_head.type == 'DNCDecodeHead'
    # one the model index does not list, and another package's
    assert mmengine.hub.get_config('mmseg_dnc::parametric/fcn_cgnet_camvid.py').filename == \
        osp.join(ROOT, 'configs', 'parametric', 'fcn_cgnet_camvid.py')
    assert mmengine.hub.get_config('mmseg::_base_/default_runtime.py').default_scope == 'mmseg'
    with pytest.raises(ValueError, match='no trained weights are published for it'):
        mmengine.hub.get_config(DEEPLAB_CONFIG, pretrained=True)


def test_mmengine_hub_get_model_downloads_nothing_unless_pretrained(monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError('get_model(pretrained=False) reached for weights')

    monkeypatch.setattr(socket.socket, 'connect', refused)
    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint', classmethod(refused))
    model = mmengine.hub.get_model(DEEPLAB_CONFIG, pretrained=False)
    assert isinstance(model.decode_head, DNCDecodeHead)
    # the backbone still names its weights, for a training run's init_weights
    assert model.backbone.init_cfg == dict(type='Pretrained',
                                           checkpoint='open-mmlab://resnet101_v1c')
    assert not model.is_init
    with pytest.raises(ValueError, match='no trained weights are published for it'):
        mmengine.hub.get_model(DEEPLAB_CONFIG, pretrained=True)


@pytest.mark.parametrize('path, error, says', [
    ('mmseg_dnc::dnc/fcn_cgnet_cityscapes.py', FileNotFoundError,
     'no such config in'),
    ('mmseg_dnc::../setup.py', ValueError, 'give a path inside the configs'),
])
def test_bad_prefix_paths_say_what_to_give(path, error, says):
    with pytest.raises(error, match=says) as caught:
        resolve_config(path)
    if error is FileNotFoundError:  # it lists the configs there are
        assert CAMVID_CONFIG in str(caught.value)


def test_model_index_lists_each_dnc_config_honestly():
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    models, collections = [], set()
    for metafile in index['Import']:
        meta = yaml.safe_load(open(osp.join(ROOT, metafile)))
        collections |= {collection['Name'] for collection in meta['Collections']}
        models += meta['Models']
    assert sorted(osp.join(ROOT, model['Config']) for model in models) == DNC_CONFIGS
    for model in models:
        # nothing trained is published: no weights, no metrics
        assert not {'Weights', 'Results'} & set(model), model['Name']
        assert model['In Collection'] in collections
        cfg = Config.fromfile(osp.join(ROOT, model['Config']))
        assert model['Name'] == osp.splitext(osp.basename(model['Config']))[0]
        meta = model['Metadata']
        assert meta['Iterations'] == cfg.train_cfg.max_iters
        assert meta['Crop Size'] == 'x'.join(map(str, cfg.model.data_preprocessor.size))
        assert cfg.train_dataloader.dataset.type == meta['Training Data'] + 'Dataset'
        assert meta['Batch Size'] % cfg.train_dataloader.batch_size == 0
        assert f'DNCDecodeHead({cfg.model.decode_head.decoder})' in meta['Architecture']
