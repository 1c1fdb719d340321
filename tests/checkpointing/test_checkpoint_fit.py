"""tools/test.py refuses a checkpoint whose DNC head is not the config's:
however its path is written (checked on the very dict mmengine loads), with
DDP's ``module.`` prefix accepted, and per-class K compared class by class."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmseg_dnc.checkpointing import MalformedCheckpointError, check_checkpoint_fits
from mmseg_dnc.checkpointing import load_checkpoint_file as load_state
from mmseg_dnc.checkpointing.checkpoint_fit import check_state_fits
from ..conftest import ROOT, TINY_CONFIG, TINY_DATA, run_tool

PER_CLASS = [10] * 10 + [5]  # Bicyclist (the 11th class) with 5 sub-centroids
PER_CLASS_OPTION = f'model.decode_head.num_subcentroids={PER_CLASS}'.replace(' ', '')


@pytest.fixture(scope='module')
def per_class_checkpoint(tmp_path_factory):
    """One iteration of the tiny config with per-class K."""
    work_dir = tmp_path_factory.mktemp('per_class')
    run_tool('train.py', TINY_CONFIG, '--work-dir', str(work_dir), '--cfg-options',
             'train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=1', PER_CLASS_OPTION,
             *TINY_DATA)
    return str(work_dir / 'iter_1.pth')


def config(**decode_head):
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.model.decode_head.update(decode_head)
    return cfg


def test_per_class_k_is_compared_class_by_class(trained, per_class_checkpoint):
    uniform = osp.join(trained[0], 'iter_4.pth')  # K=10 for every class
    # same buffer shape (11, 10, 32) both ways: only the per-class K tells them apart
    with pytest.raises(ValueError, match=r'iter_4.pth was trained with num_subcentroids=10 '
                       r'\(its saved config\), this config has \[10, .*, 5\]: classes \[10\]'):
        check_checkpoint_fits(config(num_subcentroids=PER_CLASS), uniform)
    with pytest.raises(ValueError, match=r'iter_1.pth was trained with num_subcentroids=\[10, '
                       r'.*, 5\] \(its saved config\), this config has 10: classes \[10\]'):
        check_checkpoint_fits(config(), per_class_checkpoint)
    check_checkpoint_fits(config(num_subcentroids=PER_CLASS), per_class_checkpoint)
    check_checkpoint_fits(config(), uniform)


def test_without_a_saved_config_per_class_k_is_said_to_be_unknown(trained, tmp_path,
                                                                   warnings_logged):
    bare = {'state_dict': load_state(osp.join(trained[0], 'iter_4.pth'))['state_dict']}
    torch.save(bare, tmp_path / 'bare.pth')
    check_checkpoint_fits(config(), str(tmp_path / 'bare.pth'))
    assert any("holds no training config (meta['cfg']) to tell each class's K: it is "
               'evaluated with num_subcentroids=10' in r.getMessage() for r in warnings_logged)


def test_ddp_module_prefix_is_read_as_mmengine_loads_it(trained, tmp_path):
    checkpoint = load_state(osp.join(trained[0], 'iter_4.pth'))
    checkpoint['state_dict'] = {f'module.{k}': v for k, v in checkpoint['state_dict'].items()}
    torch.save(checkpoint, tmp_path / 'ddp.pth')
    check_checkpoint_fits(config(), str(tmp_path / 'ddp.pth'))
    with pytest.raises(ValueError, match=r'holds sub-centroids \(11, 10, 32\)'):
        check_checkpoint_fits(config(num_subcentroids=5), str(tmp_path / 'ddp.pth'))


def path_forms(checkpoint: str, tmp_path):
    """The same checkpoint named in ways the loader resolves: (path, extra env)."""
    os.symlink(checkpoint, tmp_path / 'link.pth')
    home = tmp_path / 'home'
    home.mkdir()
    os.symlink(checkpoint, home / 'model.pth')
    return {'~': ('~/model.pth', {'HOME': str(home)}),
            'relative': (osp.relpath(checkpoint, ROOT), {}),
            'symlink': (str(tmp_path / 'link.pth'), {})}


@pytest.mark.parametrize('form', ['~', 'relative', 'symlink'])
def test_test_tool_checks_the_checkpoint_however_it_is_named(form, trained, tmp_path,
                                                             monkeypatch):
    path, env = path_forms(osp.join(trained[0], 'iter_4.pth'), tmp_path)[form]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    proc = run_tool('test.py', TINY_CONFIG, path, '--work-dir', str(tmp_path / 'wd'),
                    '--cfg-options', PER_CLASS_OPTION, *TINY_DATA, check=False)
    assert proc.returncode != 0, 'a per-class-K config evaluated a uniform-K checkpoint'
    assert f'{path} was trained with num_subcentroids=10' in proc.stderr
    assert 'its sub-centroids would be random' in proc.stderr
    assert 'Iter(test)' not in proc.stdout + proc.stderr  # nothing evaluated


def test_a_state_dict_that_is_not_a_dict_is_named_not_an_attribute_error():
    # the check tools/test.py's hook makes on the dict mmengine loaded, whatever its scheme
    expected = (11, [10] * 11, 32)
    for weights in ([0.0], None, 'weights'):
        with pytest.raises(MalformedCheckpointError, match=r"Refused to load remote.pth: "
                           r"checkpoint\['state_dict'\] must be a dict of tensors"):
            check_state_fits({'state_dict': weights}, expected, 'remote.pth')
