"""Test helper: each rank saves its sub-centroids after training (imported by
the 2-process test through custom_imports)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS


@HOOKS.register_module()
class RankDumpHook(Hook):

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.decode_head.sub_centroids.clone(),
                   osp.join(runner.work_dir, f'sub_centroids_rank{get_rank()}.pt'))
