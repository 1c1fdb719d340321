"""What importing mmseg_dnc changes in mmengine/mmcv/mmseg, and MMSEG_DNC_OPT_OUT."""
import os
import subprocess
import sys
import textwrap

import pytest
from mmengine.hooks import CheckpointHook
from mmengine.infer.infer import BaseInferencer
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg.registry import HOOKS, TRANSFORMS
from mmseg_dnc.checkpointing import SafeCheckpointHook, resume_guard
from mmseg_dnc.checkpointing import loader as safe_loading
from mmseg_dnc.checkpointing.takeovers import NAMES, opted_out
from mmseg_dnc.datasets import CheckedLoadAnnotations, CheckedLoadImageFromFile
from ..conftest import ROOT, TINY_CONFIG, TINY_DATA, run_tool


def test_opt_out_names_are_parsed_and_unknown_ones_refused():
    assert opted_out('') == frozenset()
    assert opted_out(' transforms, checkpoint_hook ') == {'transforms', 'checkpoint_hook'}
    assert opted_out('all') == frozenset(NAMES)
    with pytest.raises(ValueError, match="unknown checkpoint_hooks; the names are "
                       "checkpoint_loader, resume, inferencer, checkpoint_hook, transforms"):
        opted_out('checkpoint_hooks')


def test_unknown_names_beside_all_are_refused_too():
    assert opted_out('all, resume') == frozenset(NAMES)
    with pytest.raises(ValueError, match=r"MMSEG_DNC_OPT_OUT='all,bogus': unknown bogus; "
                                         r'the names are .*, or all\.'):
        opted_out('all,bogus')


@pytest.mark.skipif(bool(os.environ.get('MMSEG_DNC_OPT_OUT')),
                    reason='this process was started with MMSEG_DNC_OPT_OUT set')
def test_by_default_every_change_is_made():
    assert HOOKS.get('CheckpointHook') is SafeCheckpointHook
    assert TRANSFORMS.get('LoadImageFromFile') is CheckedLoadImageFromFile
    assert TRANSFORMS.get('LoadAnnotations') is CheckedLoadAnnotations
    assert CheckpointLoader._schemes[''] is safe_loading.load_checkpoint_file
    assert Runner.resume is resume_guard._checked_resume
    assert BaseInferencer._init_model is resume_guard._init_model_with_config


OPTED_OUT = """
import mmcv.transforms, mmengine.hooks, mmseg.datasets.transforms
from mmengine.config import Config
from mmengine.infer.infer import BaseInferencer
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader
import mmseg_dnc
from mmseg.registry import HOOKS, TRANSFORMS
init_default_scope('mmseg')
# mmengine, mmcv and mmseg as they are
assert HOOKS.get('CheckpointHook') is mmengine.hooks.CheckpointHook
assert TRANSFORMS.get('LoadImageFromFile') is mmcv.transforms.LoadImageFromFile
assert TRANSFORMS.get('LoadAnnotations') is mmseg.datasets.transforms.LoadAnnotations
assert CheckpointLoader._schemes[''].__module__ == 'mmengine.runner.checkpoint'
from mmengine.runner import runner as runner_module
from mmseg_dnc.checkpointing import resume_guard
assert runner_module._load_checkpoint is resume_guard._mmengine_load_checkpoint  # no checks
assert BaseInferencer._init_model is resume_guard._mmengine_init_model
# the project's own configs still name the safe versions
cfg = Config.fromfile('configs/dnc/fcn_cgnet_camvid.py')
hook = HOOKS.build(cfg.default_hooks.checkpoint)
assert type(hook).__name__ == 'SafeCheckpointHook', type(hook)
steps = [TRANSFORMS.get(t['type']).__name__ for t in cfg.train_dataloader.dataset.pipeline[:2]]
assert steps == ['CheckedLoadImageFromFile', 'CheckedLoadAnnotations'], steps
for config in ('deeplabv3_r101_ade20k', 'upernet_swin-b_cityscapes'):
    cfg = Config.fromfile(f'configs/dnc/{config}.py')
    assert cfg.default_hooks.checkpoint.type == 'SafeCheckpointHook', config
print('opted out')
"""


def test_opting_out_leaves_mmengine_mmcv_and_mmseg_as_they_are():
    env = dict(os.environ, MMSEG_DNC_OPT_OUT='all')
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(OPTED_OUT)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'opted out' in proc.stdout


def test_the_safe_versions_are_registered_under_their_own_names():
    assert issubclass(SafeCheckpointHook, CheckpointHook)
    assert HOOKS.get('SafeCheckpointHook') is SafeCheckpointHook
    assert TRANSFORMS.get('CheckedLoadImageFromFile') is CheckedLoadImageFromFile


def test_with_the_resume_checks_off_a_resume_still_restores_the_run(tmp_path, monkeypatch):
    # SafeCheckpointHook learns from the Runner.resume wrapper that a resume
    # is under way; opting out of the checks must not turn that off
    run_tool('train.py', TINY_CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
             'train_cfg.max_iters=2', *TINY_DATA)
    monkeypatch.setenv('MMSEG_DNC_OPT_OUT', 'resume')
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(tmp_path), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=3', *TINY_DATA)
    out = proc.stdout + proc.stderr
    assert 'Restored torch random generators (cpu) as they were at iteration 2' in out
    assert 'Iter(train) [3/3]' in out
