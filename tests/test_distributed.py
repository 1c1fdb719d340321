"""Across processes (gloo, 2 CPU processes): the batched assignment and the
update see the global batch, so every rank ends with the same sub-centroids,
equal to one process on the whole batch."""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mmseg_dnc.models import dnc_core
from .conftest import CAMVID, ROOT, assert_same_training_state

C, K, D = 4, 3, 8
# every sub-centroid learning mechanism on (a restart window of 2 steps), so that
# seeding, warm-up counts, starved classes and restarts are checked across ranks
LEARNING = ['model.decode_head.subcentroid_init=kmeans++',
            'model.decode_head.momentum_warmup=True',
            'model.decode_head.update_from=correct_or_all',
            'model.decode_head.restart_dead_below=0.5', 'model.decode_head.restart_dead_every=2']


def global_batch():
    gen = torch.Generator().manual_seed(0)
    sub_centroids = F.normalize(torch.randn(C, K, D, generator=gen), dim=-1)
    x = F.normalize(torch.randn(120, D, generator=gen), dim=-1)
    labels = torch.randint(0, C - 1, (120,), generator=gen)  # class 3 absent
    return sub_centroids, x, labels


def step(sub_centroids, x, labels):
    own = torch.einsum('md,mkd->mk', x, sub_centroids[labels])
    _, assignment = dnc_core.sinkhorn_assign(own, labels, C)
    new, _ = dnc_core.momentum_update(sub_centroids, x, labels, assignment, momentum=0.9)
    return assignment, new


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def two_forked_ranks(worker, out_dir) -> None:
    """``worker(rank, 2, port, out_dir)`` in two processes, forked: a spawned
    rank would import torch, mmseg and the test module again (seconds)."""
    mp.start_processes(worker, args=(2, free_port(), str(out_dir)), nprocs=2, join=True,
                       start_method='fork')


def worker(rank, world_size, port, out_dir):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world_size)
    sub_centroids, x, labels = global_batch()
    mine = slice(rank * 60, (rank + 1) * 60)
    assignment, new = step(sub_centroids, x[mine], labels[mine])
    torch.save({'assignment': assignment, 'sub_centroids': new},
               osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    two_forked_ranks(worker, tmp_path)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    assignment, new = step(*global_batch())
    assert torch.equal(ranks[0]['sub_centroids'], ranks[1]['sub_centroids'])
    torch.testing.assert_close(ranks[0]['sub_centroids'], new, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.cat([r['assignment'] for r in ranks]), assignment,
                               rtol=0, atol=0)
    # and the single-process result did move the classes present
    assert not torch.equal(new[:3], global_batch()[0][:3])


def dist_train(config, work_dir, *extra, check=True):
    data = [f'{loader}.dataset.data_root={CAMVID}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT, PYTHON=sys.executable,
               PORT=str(free_port()))
    proc = subprocess.run(
        ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), str(config), '2',
         '--work-dir', str(work_dir), *extra, '--cfg-options', 'train_cfg.max_iters=4',
         'train_cfg.val_begin=100', 'default_hooks.checkpoint.interval=1',
         'default_hooks.checkpoint.max_keep_ckpts=1', 'model.decode_head.memory_size=8',
         *LEARNING, *data],
        capture_output=True, text=True, cwd=ROOT, env=env)
    if check:
        # both ends: how far training got (stdout), and how it failed (stderr)
        assert proc.returncode == 0, (proc.stdout[-2000:] + '\n--- stderr ---\n'
                                      + proc.stderr[-3000:])
    return proc


def test_torchrun_two_processes_train_identically_and_resume_a_kill_exactly(tmp_path):
    """Two gloo processes through tools/dist_train.sh: every rank ends with the
    same sub-centroids (bitwise, after 4 all-reduced updates), the checkpoint
    holds them, and a run killed while saving resumes to the uninterrupted run."""
    config = osp.join(ROOT, 'tests', 'configs', 'fcn_r18_camvid_tiny.py')
    with_dump = tmp_path / 'with_rank_dump.py'
    with_dump.write_text(
        f"_base_ = '{config}'\n"
        "custom_imports = dict(imports=['mmseg_dnc', 'tests.train_hooks'])\n"
        "custom_hooks = [dict(type='RankDumpHook')]\n")
    whole = dist_train(with_dump, tmp_path / 'whole')
    out = whole.stdout + whole.stderr
    assert 'gloo process group 0/2' in out and 'Iter(train) [4/4]' in out
    ranks = [torch.load(tmp_path / 'whole' / f'sub_centroids_rank{r}.pt') for r in range(2)]
    assert torch.equal(ranks[0], ranks[1])
    saved = torch.load(tmp_path / 'whole' / 'iter_4.pth', weights_only=False)['state_dict']
    assert torch.equal(saved['decode_head.sub_centroids'], ranks[0])

    killing = tmp_path / 'killing.py'
    killing.write_text(
        f"_base_ = '{config}'\n"
        "custom_imports = dict(imports=['mmseg_dnc', 'tests.train_hooks'])\n"
        "custom_hooks = [dict(type='KillWhileSavingHook', at_iter=3)]\n")
    killed = dist_train(killing, tmp_path / 'run', check=False)
    assert killed.returncode != 0 and os.listdir(tmp_path / 'run').count('iter_2.pth') == 1
    resumed = dist_train(config, tmp_path / 'run', '--resume')
    assert 'Restored torch random generators (cpu) as they were at iteration 2' in (
        resumed.stdout + resumed.stderr)
    assert_same_training_state(*(torch.load(tmp_path / d / 'iter_4.pth', weights_only=False)
                                 for d in ('whole', 'run')))
