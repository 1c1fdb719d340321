"""What was saved or imported before ``mmseg_dnc/checkpointing/`` existed still
works: a checkpoint written by the code of commit e77fb34 (its hook in
``engine/checkpoint_hook.py``) resumes, and the modules' first names import."""
import os.path as osp

import torch

from mmseg_dnc.checkpointing import load_checkpoint_file as load_state
from mmseg_dnc.checkpointing.rng_state import RNG_KEY
from mmseg_dnc.checkpointing.run_files import RUN_KEY
from ..conftest import TEST_DATA, TINY_CONFIG, TINY_DATA, run_tool

# iter_2.pth of tools/train.py TINY_CONFIG --cfg-options train_cfg.max_iters=2 *NARROW,
# run at e77fb34 (tests/data/README.md)
SAVED_BEFORE = osp.join(TEST_DATA, 'checkpoints', 'fcn_tiny_iter_2.pth')
# the tiny config at a sixteenth of its backbone's width: a checkpoint of 553 KB
NARROW = ['model.backbone.stem_channels=4', 'model.backbone.base_channels=4',
          'model.decode_head.in_channels=32', 'model.decode_head.channels=16',
          'model.auxiliary_head.in_channels=16', 'model.auxiliary_head.channels=8']


def test_a_checkpoint_saved_before_the_package_resumes(tmp_path):
    saved = load_state(SAVED_BEFORE)
    assert saved['meta']['iter'] == 2 and RNG_KEY in saved and RUN_KEY in saved
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(tmp_path), '--resume',
                    '--cfg-options', f'load_from={SAVED_BEFORE}', 'train_cfg.max_iters=3',
                    *NARROW, *TINY_DATA)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 2' in log and 'Iter(train) [3/3]' in log
    assert 'Restored torch random generators (cpu) as they were at iteration 2' in log
    resumed = load_state(str(tmp_path / 'iter_3.pth'))
    assert resumed['meta']['iter'] == 3
    assert resumed[RUN_KEY] == saved[RUN_KEY]  # the same run, carried on
    # it trained on: the weights, the sub-centroids and the optimizer's momentum moved
    for key in ('backbone.layer1.0.conv1.weight', 'decode_head.sub_centroids'):
        assert not torch.equal(resumed['state_dict'][key], saved['state_dict'][key]), key
    momentum = [(state['momentum_buffer'], resumed['optimizer']['state'][param]['momentum_buffer'])
                for param, state in saved['optimizer']['state'].items()]
    assert momentum and not all(torch.equal(a, b) for a, b in momentum)


def test_the_first_names_still_import():
    from mmseg_dnc import checkpoint, checkpointing, engine, fileio, takeovers
    assert checkpoint.load_checkpoint_file is checkpointing.load_checkpoint_file
    assert checkpoint.UntrustedCheckpointError is checkpointing.UntrustedCheckpointError
    assert fileio.atomic_write is checkpointing.atomic_write
    assert takeovers.enabled is checkpointing.enabled
    for name in ('SafeCheckpointHook', 'CheckpointFitsHook', 'UnsafeResumeError',
                 'check_resume_checkpoint', 'check_checkpoint_fits', 'is_resuming'):
        assert getattr(engine, name) is getattr(checkpointing, name), name
