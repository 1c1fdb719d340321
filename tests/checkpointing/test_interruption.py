"""Interrupted training: a run killed while it writes a checkpoint loses
nothing, and ``--resume`` continues it to the very same weights, sub-centroids,
memory and optimizer state as a run that was never interrupted. The same seed
gives the same run, bitwise. Real CamVid files through mmseg's loaders."""
import errno
import os
import os.path as osp
import re
import resource
import signal

import pytest
import torch

from mmseg_dnc.checkpointing import CorruptCheckpointError, atomic_write
from mmseg_dnc.checkpointing import load_checkpoint_file as load_state
from ..conftest import (TINY_CONFIG, TINY_DATA, assert_same_training_state,
                        config_with_hooks, run_tool)

# 6 iterations, a checkpoint after each, only the newest kept (the setting
# under which mmengine's own hook deletes the old file before writing the
# new), validation at 3 and 6 (its DataLoader draws a seed from torch's
# generator, and the resumed run does not repeat the validation at 3), the
# FIFO memory on (its sampling draws from torch's generator, as does the
# head's dropout)
SETTINGS = ['train_cfg.max_iters=6', 'train_cfg.val_interval=3',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=1',
            'model.decode_head.memory_size=8',
            # the sub-centroid learning mechanisms, whose state resumes too
            'model.decode_head.subcentroid_init=kmeans++',
            'model.decode_head.momentum_warmup=True',
            'model.decode_head.update_from=correct_or_all',
            'model.decode_head.restart_dead_below=0.5', 'model.decode_head.restart_dead_every=2',
            *TINY_DATA]


def train(config, work_dir, *extra, check=True):
    return run_tool('train.py', config, '--work-dir', str(work_dir), *extra,
                    '--cfg-options', *SETTINGS, check=check)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('uninterrupted')
    config = config_with_hooks(tmp, "dict(type='RecordAssignmentsHook')")
    train(config, tmp / 'run')
    return tmp / 'run'


def test_same_seed_same_run_bitwise(uninterrupted, tmp_path):
    config = config_with_hooks(tmp_path, "dict(type='RecordAssignmentsHook')")
    train(config, tmp_path / 'again')
    first = load_state(str(uninterrupted / 'iter_6.pth'))
    again = load_state(str(tmp_path / 'again' / 'iter_6.pth'))
    assert_same_training_state(first, again)
    # and the sub-centroid assignment of every labelled pixel (2x12x12 features) at each step
    assignments = [torch.load(run / 'assignments.pt')
                   for run in (uninterrupted, tmp_path / 'again')]
    assert len(assignments[0]) == 6 and all(a.numel() > 100 for a in assignments[0])
    assert all(torch.equal(a, b) for a, b in zip(*assignments))


def test_killed_while_saving_then_resumed_equals_uninterrupted(uninterrupted, tmp_path):
    work_dir = tmp_path / 'run'
    killed = train(config_with_hooks(tmp_path, "dict(type='KillWhileSavingHook', at_iter=4)"),
                   work_dir, check=False)
    assert killed.returncode == -signal.SIGXFSZ, killed.stderr[-2000:]
    # the kill cut the new checkpoint short; the previous one is whole and current
    files = sorted(os.listdir(work_dir))
    assert 'iter_3.pth' in files and 'iter_4.pth' not in files
    partial = [f for f in files if f.startswith('.iter_4.pth.') and f.endswith('.part')]
    assert len(partial) == 1 and osp.getsize(work_dir / partial[0]) == 1 << 20
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'iter_3.pth')
    assert load_state(str(work_dir / 'iter_3.pth'))['meta']['iter'] == 3

    config = config_with_hooks(tmp_path, "dict(type='RecordAssignmentsHook')")
    resumed = train(config, work_dir, '--resume')
    log = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 3' in log
    assert 'partial file(s) left by an interrupted save' in log and partial[0] in log
    assert 'Restored torch random generators (cpu) as they were at iteration 3' in log
    assert_same_training_state(load_state(str(uninterrupted / 'iter_6.pth')),
                               load_state(str(work_dir / 'iter_6.pth')))
    # iterations 4 to 6 assigned every pixel as the uninterrupted run did
    expected = torch.load(uninterrupted / 'assignments.pt')[3:]
    assert all(torch.equal(a, b) for a, b in zip(expected, torch.load(work_dir / 'assignments.pt')))
    # max_keep_ckpts=1 still holds once the new checkpoint is written
    assert sorted(f for f in os.listdir(work_dir) if f.startswith('iter_')) == ['iter_6.pth']


def test_killed_while_saving_a_new_best_keeps_the_previous_best(tmp_path):
    config = config_with_hooks(tmp_path, "dict(type='KillWhileSavingHook', at_iter=4, best=True)")
    # the paper's random start: with it, seed 0's mIoU rises from iteration 2 to 4,
    # so iteration 4 saves a new best (what this test kills)
    settings = ['train_cfg.max_iters=4', 'train_cfg.val_interval=2',
                'default_hooks.checkpoint.save_best=mIoU',
                'model.decode_head.subcentroid_init=random', *TINY_DATA]
    killed = run_tool('train.py', config, '--work-dir', str(tmp_path / 'run'), '--cfg-options',
                      *settings, check=False)
    assert killed.returncode == -signal.SIGXFSZ, killed.stderr[-2000:]
    # mIoU went up at 4 (seed 0), so mmengine would have deleted the best of 2 first
    log = killed.stdout + killed.stderr
    at_2, at_4 = (float(m) for m in re.findall(r'Iter\(val\) \[4/4\].* mIoU: ([\d.]+)', log))
    assert at_4 > at_2 and 'The best checkpoint with' in log
    best = load_state(str(tmp_path / 'run' / 'best_mIoU_iter_2.pth'))
    assert best['meta']['iter'] == 2
    assert not osp.exists(tmp_path / 'run' / 'best_mIoU_iter_4.pth')
    # uninterrupted, the new best replaces the old one once written
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(tmp_path / 'whole'),
                    '--cfg-options', *settings)
    assert sorted(f for f in os.listdir(tmp_path / 'whole') if f.startswith('best')) == [
        'best_mIoU_iter_4.pth']
    assert 'best_mIoU_iter_2.pth is removed' in proc.stdout + proc.stderr


def in_a_child(fn, *args):
    """``fn(*args)`` in a forked child (a fresh interpreter would import torch
    again): its exit status (-N: killed by signal N) and what it wrote to fd 1."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read)
            fn(write, *args)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as out:
        text = out.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), text


def write_past_the_file_size_limit(out, path, kill):
    """atomic_write of 3 MiB under a 64 KiB file size limit: with ``kill``, the
    process dies of SIGXFSZ midway, as a killed run would; without, write()
    fails (EFBIG), as on a full disk (Python ignores SIGXFSZ)."""
    if kill:
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.RLIM_INFINITY))
    try:
        atomic_write(path, b'new' * (1 << 20))
    except OSError as error:
        os.write(out, f'{type(error).__name__} {error.errno}'.encode())


def test_atomic_write_killed_midway_keeps_the_old_file(tmp_path):
    target = tmp_path / 'iter_8.pth'
    good = {'state_dict': {'w': torch.arange(6.0)}}
    torch.save(good, target)
    before = target.read_bytes()
    status, _ = in_a_child(write_past_the_file_size_limit, str(target), True)
    assert status == -signal.SIGXFSZ
    assert target.read_bytes() == before
    assert torch.equal(load_state(str(target))['state_dict']['w'], torch.arange(6.0))
    # written whole, the new content replaces the old; a cut file is reported as such
    atomic_write(target, b'x' * 10)
    assert target.read_bytes() == b'x' * 10
    with pytest.raises(CorruptCheckpointError, match='truncated or corrupt'):
        load_state(str(target))


def test_resume_into_a_changed_model_is_refused(trained, tmp_path):
    work_dir, _ = trained  # 4 iterations of the tiny config, K=10
    resumed = tmp_path / 'run'
    resumed.mkdir()
    (resumed / 'last_checkpoint').write_text(osp.join(work_dir, 'iter_4.pth'))
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(resumed), '--resume',
                    '--cfg-options', 'model.decode_head.num_subcentroids=5',
                    'train_cfg.max_iters=6', *TINY_DATA, check=False)
    assert proc.returncode != 0
    assert ('ValueError: Cannot resume: the model is not the one the checkpoint was saved '
            'from:\n  decode_head.sub_centroids: (11, 10, 32) in the checkpoint, (11, 5, 32) '
            'in this model\n') in proc.stderr
    assert 'load_from=CHECKPOINT' in proc.stderr
    assert not any(f.endswith('.pth') for f in os.listdir(resumed))


def test_a_full_disk_fails_the_write_and_keeps_the_old_file(tmp_path):
    # Python ignores SIGXFSZ, so past the limit write() fails (EFBIG), as on a full disk
    target = tmp_path / 'iter_8.pth'
    target.write_bytes(b'old checkpoint')
    status, out = in_a_child(write_past_the_file_size_limit, str(target), False)
    assert (status, out.split()) == (0, ['OSError', str(errno.EFBIG)])
    assert target.read_bytes() == b'old checkpoint'
    assert os.listdir(tmp_path) == ['iter_8.pth']  # the partial file was removed
