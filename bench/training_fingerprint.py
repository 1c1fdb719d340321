"""Is training bitwise the same? A fingerprint of seeded training steps.

Trains the tests' tiny config (FCN, ResNet-18, the DNC head) on the real CamVid
sample in tests/data for 5 seeded iterations under each of several head
settings (every learning mechanism on in some), on one thread, and prints the
SHA-1 of each final state dict. Run it before and after a change that must
not change training (a refactor): the lines must be equal.

    OMP_NUM_THREADS=1 python bench/training_fingerprint.py [--work-dir DIR] [--plain-autograd]

``--plain-autograd`` trains with the head's plain autograd instead of its
memory-lean backward (models/lean_grad.py), whose PPC gradient differs from
plain autograd's at float rounding: the plain fingerprints are those of the
code before the lean backward (80759b9 to 8ca66f5).
"""
import argparse
import contextlib
import hashlib
import os.path as osp

import torch
from mmengine.runner import Runner

import mmseg_dnc  # noqa: F401
from mmseg_dnc.engine import prepare_config
from mmseg_dnc.models.lean_grad import plain_autograd

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
K_PER_CLASS = [3, 5, 2, 5, 4, 3, 2, 2, 4, 2, 2]
SETTINGS = {
    'default': {},
    'per_class_k': dict(num_subcentroids=K_PER_CLASS),
    'combined': dict(subcentroid_init='kmeans++', momentum_warmup=True,
                     update_from='correct_or_all', restart_dead_below=0.5,
                     restart_dead_every=2, memory_size=16, memory_per_step=8),
    'combined_k': dict(num_subcentroids=K_PER_CLASS, momentum_warmup=True,
                       restart_dead_below=0.5, restart_dead_every=2, restart_on='random'),
    'random_proj': dict(subcentroid_init='random', projection=True, update_from='all'),
}


def fingerprint(keys: dict, work_dir: str, iters: int = 5) -> str:
    """SHA-1 of the state dict after ``iters`` seeded training steps."""
    options = {f'model.decode_head.{k}': v for k, v in keys.items()}
    options.update({'train_cfg.max_iters': iters, 'train_cfg.val_interval': 10 * iters})
    cfg = prepare_config(osp.join(ROOT, 'tests', 'configs', 'fcn_r18_camvid_tiny.py'),
                         cfg_options=options, data_root=osp.join(ROOT, 'tests', 'data', 'camvid'),
                         work_dir=work_dir)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = 10 * iters
    runner = Runner.from_cfg(cfg)
    runner.train()
    state = runner.model.state_dict()
    return hashlib.sha1(b''.join(v.cpu().numpy().tobytes() for v in state.values())).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/fingerprint')
    parser.add_argument('--plain-autograd', action='store_true',
                        help="the head's plain autograd, not its lean backward")
    args = parser.parse_args()
    with plain_autograd() if args.plain_autograd else contextlib.nullcontext():
        rows = [(name, fingerprint(keys, osp.join(args.work_dir, name)))
                for name, keys in SETTINGS.items()]
    print(f'\n{torch.get_num_threads()} threads, torch {torch.__version__}')
    print('| head setting | SHA-1 of the state dict after 5 steps |\n|---|---|')
    for name, digest in rows:
        print(f'| {name} | {digest} |')


if __name__ == '__main__':
    main()
