"""Test helper hooks, imported by the tests' configs through custom_imports.

``RankDumpHook``: each rank saves its sub-centroids after training.
``RecordAssignmentsHook``: saves the sub-centroid assignment of every step.
``KillWhileSavingHook(at_iter=N, best=False)``: lets iteration N run and kills
the process while it writes that iteration's checkpoint (with ``best=True``,
its best checkpoint, the one saved without optimizer): the kernel stops the
write half-way (RLIMIT_FSIZE with SIGXFSZ at its default action), as a node
that dies or a full disk cuts a file short.
"""
import os.path as osp
import resource
import signal

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS


def _head(runner):
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return model.decode_head


@HOOKS.register_module()
class RankDumpHook(Hook):

    def after_train(self, runner):
        torch.save(_head(runner).sub_centroids.clone(),
                   osp.join(runner.work_dir, f'sub_centroids_rank{get_rank()}.pt'))


@HOOKS.register_module()
class RecordAssignmentsHook(Hook):

    def before_train(self, runner):
        self.assignments = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.assignments.append(_head(runner).last_assignment.clone())

    def after_train(self, runner):
        torch.save(self.assignments, osp.join(runner.work_dir, 'assignments.pt'))


@HOOKS.register_module()
class KillWhileSavingHook(Hook):

    def __init__(self, at_iter: int, best: bool = False):
        self.at_iter = at_iter
        self.best = best

    def before_save_checkpoint(self, runner, checkpoint):
        is_best = 'optimizer' not in checkpoint
        if checkpoint['meta']['iter'] == self.at_iter and is_best == self.best:
            # no file may grow past 1 MiB from here on: the checkpoint (tens
            # of MiB) is cut there, and the process dies
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
