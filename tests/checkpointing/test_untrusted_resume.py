"""A checkpoint given to --resume is untrusted: what mmengine's resume machinery
would act on is checked first. Crafted checkpoints through tools/train.py (via
the work dir's last_checkpoint and via load_from) must neither run code nor
delete files; each field mmengine interprets is refused when it is not what
training writes."""
import copy
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from mmseg_dnc.checkpointing import UnsafeResumeError, check_resume_checkpoint
from mmseg_dnc.checkpointing import load_checkpoint_file as load_state
from mmseg_dnc.checkpointing.rng_state import RNG_KEY
from mmseg_dnc.checkpointing.run_files import RUN_KEY
from ..conftest import TINY_CONFIG, TINY_DATA, run_tool


@pytest.fixture(scope='module')
def genuine(trained):
    """A checkpoint that training wrote (iteration 4 of the tiny config)."""
    work_dir, _ = trained
    return load_state(osp.join(work_dir, 'iter_4.pth'))


def save(checkpoint, path) -> str:
    torch.save(checkpoint, path)
    return str(path)


def resume(tmp_path, checkpoint: str, via: str, *options):
    """tools/train.py --resume of ``checkpoint`` into tmp_path/'run', through the
    work dir's last_checkpoint or through load_from."""
    work_dir = tmp_path / 'run'
    work_dir.mkdir(exist_ok=True)
    if via == 'last_checkpoint':
        (work_dir / 'last_checkpoint').write_text(checkpoint)
    else:
        options = (f'load_from={checkpoint}', *options)
    return run_tool('train.py', TINY_CONFIG, '--work-dir', str(work_dir), '--resume',
                    '--cfg-options', *options, *TINY_DATA, check=False)


VIA = ['last_checkpoint', 'load_from']


@pytest.mark.parametrize('via', VIA)
def test_config_in_meta_is_never_executed(via, genuine, tmp_path):
    marker = tmp_path / 'pwned'
    evil = copy.deepcopy(genuine)
    evil['meta']['config'] = f"x = __import__('os').system('touch {marker}')"
    proc = resume(tmp_path, save(evil, tmp_path / 'evil.pth'), via, 'train_cfg.max_iters=6')
    assert proc.returncode != 0
    assert "UnsafeResumeError: Refused to resume from" in proc.stderr
    assert "meta['config'] is present" in proc.stderr and 'load_from=CHECKPOINT' in proc.stderr
    assert not marker.exists()


def victims(work_dir, genuine) -> dict:
    """Files of the user's in the work dir that a crafted keep_ckpt_ids names:
    a file of theirs, and checkpoints of another run and of no known run."""
    other, unknown = copy.deepcopy(genuine), copy.deepcopy(genuine)
    other[RUN_KEY] = '0' * 32
    unknown.pop(RUN_KEY)
    (work_dir / 'iter_1.pth').write_bytes(b'my notes')
    save(other, work_dir / 'iter_2.pth')
    save(unknown, work_dir / 'iter_3.pth')
    return {name: (work_dir / name).read_bytes() for name in os.listdir(work_dir)}


@pytest.mark.parametrize('via', VIA)
def test_keep_ckpt_ids_deletes_no_file_this_run_did_not_write(via, genuine, tmp_path):
    (tmp_path / 'run').mkdir()
    before = victims(tmp_path / 'run', genuine)
    evil = copy.deepcopy(genuine)  # iteration 4; mmengine deleted the ids beyond max_keep_ckpts
    evil['message_hub']['runtime_info']['keep_ckpt_ids'] = [1, 2, 3, 4]
    proc = resume(tmp_path, save(evil, tmp_path / 'evil.pth'), via, 'train_cfg.max_iters=6',
                  'default_hooks.checkpoint.interval=1',
                  'default_hooks.checkpoint.max_keep_ckpts=1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, content in before.items():
        assert (tmp_path / 'run' / name).read_bytes() == content, name
    log = proc.stdout + proc.stderr
    assert all(f'Kept {tmp_path / "run" / name}: this run would delete it' in log
               for name in before)
    # what this run wrote is pruned as max_keep_ckpts says: iteration 5 once 6 was written
    assert sorted(f for f in os.listdir(tmp_path / 'run') if f.startswith('iter_')) == [
        'iter_1.pth', 'iter_2.pth', 'iter_3.pth', 'iter_6.pth']


def test_best_ckpt_outside_the_run_is_neither_deleted_nor_published(genuine, tmp_path):
    precious = tmp_path / 'elsewhere' / 'thesis.pth'
    precious.parent.mkdir()
    precious.write_bytes(b'a year of work')
    evil = copy.deepcopy(genuine)
    evil['message_hub']['runtime_info'].update(best_ckpt=str(precious), best_score=0.0)
    proc = resume(tmp_path, save(evil, tmp_path / 'evil.pth'), 'load_from',
                  'train_cfg.max_iters=6', 'train_cfg.val_interval=2',
                  'default_hooks.checkpoint.save_best=mIoU',
                  "default_hooks.checkpoint.published_keys=['meta','state_dict']")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert precious.read_bytes() == b'a year of work'
    assert os.listdir(precious.parent) == ['thesis.pth']  # nothing published beside it
    log = proc.stdout + proc.stderr
    assert f'names {precious} as the best checkpoint so far, and this run did not write it' in log
    assert (tmp_path / 'run' / 'best_mIoU_iter_6.pth').exists()


def test_scheduler_state_is_checked_against_the_runs_own(genuine, tmp_path):
    evil = copy.deepcopy(genuine)  # __dict__.update would shadow the scheduler's step()
    evil['param_schedulers'][0]['step'] = 0
    proc = resume(tmp_path, save(evil, tmp_path / 'evil.pth'), 'load_from',
                  'train_cfg.max_iters=6')
    assert proc.returncode != 0
    assert ("UnsafeResumeError: Refused to resume from " + str(tmp_path / 'evil.pth') +
            ": checkpoint['param_schedulers'][0] has keys ['step'] that this config's "
            'scheduler does not') in proc.stderr


# ------------------------------------------------ each field, crafted in-process
def layout_of(checkpoint) -> dict:
    """The optimizer layout the tiny config's SGD has (parameter shapes by group)."""
    state = checkpoint['optimizer']['state']
    return {'': dict(groups=[[tuple(state[i]['momentum_buffer'].shape) for i in g['params']]
                             for g in checkpoint['optimizer']['param_groups']],
                     base_param_settings=False)}


def hub(c):
    return c['message_hub']['runtime_info']


def buffer_with(**attributes):
    buffer = HistoryBuffer([1.0], [1])
    vars(buffer).update(attributes)
    return buffer


CRAFTED = {
    # field refused: what is done to a genuine checkpoint
    "meta['config']": lambda c: c['meta'].update(config='x = 1'),
    "meta['iter']": lambda c: c['meta'].update(iter='4'),
    "meta['epoch']": lambda c: c['meta'].update(epoch=-1),
    "meta['seed']": lambda c: c['meta'].update(seed=2**40),
    "meta['cfg']": lambda c: c['meta'].update(cfg=['import os']),
    "meta['dataset_meta']": lambda c: c['meta'].update(dataset_meta={'classes': print}),
    "checkpoint['meta'] is missing": lambda c: c.pop('meta'),
    "checkpoint['message_hub'] is missing": lambda c: c.pop('message_hub'),
    "message_hub['log_scalars']['train/loss']": lambda c: c['message_hub']['log_scalars'].update(
        {'train/loss': [0.5]}),
    "message_hub['log_scalars']['train/lr'] has attributes": lambda c: c['message_hub'][
        'log_scalars'].update({'train/lr': buffer_with(update=0)}),
    "message_hub['log_scalars']['train/lr'].statistics_methods['mean']": lambda c: c[
        'message_hub']['log_scalars'].update({'train/lr': buffer_with(
            statistics_methods={'mean': print})}),
    "message_hub['log_scalars']['train/lr']._log_history": lambda c: c['message_hub'][
        'log_scalars'].update({'train/lr': buffer_with(_log_history=np.zeros((1, 1)))}),
    "message_hub['resumed_keys']": lambda c: c['message_hub']['resumed_keys'].update(x='yes'),
    "['keep_ckpt_ids'] must be a list": lambda c: hub(c).update(keep_ckpt_ids='1,2'),
    "['keep_ckpt_ids'][0]": lambda c: hub(c).update(keep_ckpt_ids=['../../home/x']),
    "['keep_ckpt_ids'] must increase": lambda c: hub(c).update(keep_ckpt_ids=[3, 1]),
    "['keep_ckpt_ids'] names step 100": lambda c: hub(c).update(keep_ckpt_ids=[2, 100]),
    "['best_ckpt']": lambda c: hub(c).update(best_ckpt=7),
    "['best_score']": lambda c: hub(c).update(best_score=math.nan),
    "['best_score_mIoU']": lambda c: hub(c).update(best_score_mIoU='high'),
    "['eta']": lambda c: hub(c).update(eta='soon'),
    "['loop_stage']": lambda c: hub(c).update(loop_stage='deploy'),
    "['max_iters']": lambda c: hub(c).update(max_iters=1.5),
    "['cfg']": lambda c: hub(c).update(cfg=b'import os'),
    "['seed']": lambda c: hub(c).update(seed=-3),
    "['my_hook_state']": lambda c: hub(c).update(my_hook_state=[{'fn': print}]),
    "checkpoint['state_dict']['backbone.conv1.weight']": lambda c: c['state_dict'].update(
        {'backbone.conv1.weight': [0.0]}),
    "checkpoint['ema_state_dict']": lambda c: c.update(ema_state_dict=[1]),
    "checkpoint['optimizer'] holds ['step']": lambda c: c['optimizer'].update(step=1),
    "checkpoint['optimizer']['param_groups'] must be a list of 1": lambda c: c['optimizer'][
        'param_groups'].append(dict(c['optimizer']['param_groups'][0])),
    "['param_groups'][0]['params']": lambda c: c['optimizer']['param_groups'][0]['params'].pop(),
    "['param_groups'][0]['lr']": lambda c: c['optimizer']['param_groups'][0].update(lr={'a': 1}),
    "['state'][0]['momentum_buffer']": lambda c: c['optimizer']['state'][0].update(
        momentum_buffer=torch.zeros(3, 5)),
    "['state'][999]": lambda c: c['optimizer']['state'].update({999: {}}),
    "['base_param_settings']": lambda c: c['optimizer'].update(
        base_param_settings={'lr': 1.0, 'params': []}),
    "['loss_scaler']['scale']": lambda c: c['optimizer'].update(loss_scaler={'scale': 'big'}),
    "checkpoint['param_schedulers'] must be a list of 1": lambda c: c['param_schedulers'].append(
        dict(c['param_schedulers'][0])),
    "checkpoint['param_schedulers'][0] has keys ['optimizer']": lambda c: c['param_schedulers'][
        0].update(optimizer=0),
    "checkpoint['param_schedulers'][0]['total_iters']": lambda c: c['param_schedulers'][
        0].update(total_iters='many'),
    "checkpoint['param_schedulers'][0]['base_values']": lambda c: c['param_schedulers'][
        0].update(base_values=[0.01, 0.02]),
    f"checkpoint[{RNG_KEY!r}][0]['cpu']": lambda c: c[RNG_KEY][0].update(cpu=torch.zeros(8)),
    f"checkpoint[{RNG_KEY!r}][0] has keys": lambda c: c[RNG_KEY][0].update(mps=torch.zeros(8)),
    f"checkpoint[{RNG_KEY!r}][0]['cuda']": lambda c: c[RNG_KEY][0].update(cuda=torch.zeros(8)),
    f"checkpoint[{RNG_KEY!r}] must be a list": lambda c: c.update({RNG_KEY: {}}),
    f"checkpoint[{RUN_KEY!r}]": lambda c: c.update({RUN_KEY: '../x'}),
}


def test_a_genuine_checkpoint_passes(genuine):
    check_resume_checkpoint(genuine, 'iter_4.pth', layout_of(genuine), genuine['param_schedulers'])
    # as mmengine's HistoryBuffer.__getstate__ leaves it once pickled or copied
    copy.deepcopy(genuine)
    check_resume_checkpoint(genuine, 'iter_4.pth', layout_of(genuine), genuine['param_schedulers'])


@pytest.mark.parametrize('field', list(CRAFTED))
def test_each_field_is_checked(field, genuine):
    crafted = copy.deepcopy(genuine)
    CRAFTED[field](crafted)
    with pytest.raises(UnsafeResumeError) as refused:
        check_resume_checkpoint(crafted, 'crafted.pth', layout_of(genuine),
                                genuine['param_schedulers'])
    assert refused.value.args[0].startswith(f'Refused to resume from crafted.pth: ')
    assert field in refused.value.args[0]


def test_a_genuine_multi_group_run_resumes(tmp_path):
    """What mmseg's own configs use (paramwise_cfg: several parameter groups,
    AdamW, warm-up then poly, save_best, max_keep_ckpts=1) resumes through the
    checks: mmengine keeps base_param_settings['params'] as a tensor then."""
    config = tmp_path / 'multi_group.py'
    config.write_text(f"""_base_ = '{TINY_CONFIG}'
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
                     paramwise_cfg=dict(custom_keys=dict(decode_head=dict(lr_mult=10.0))))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
                   dict(type='PolyLR', eta_min=1e-5, power=0.9, by_epoch=False, begin=2, end=4)]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1,
                                     max_keep_ckpts=1, save_best='mIoU'))
train_cfg = dict(max_iters=2, val_interval=2)
""")
    work_dir = tmp_path / 'run'
    run_tool('train.py', str(config), '--work-dir', str(work_dir), '--cfg-options', *TINY_DATA)
    saved = load_state(str(work_dir / 'iter_2.pth'))
    assert isinstance(saved['optimizer']['base_param_settings']['params'], torch.Tensor)
    assert len(saved['optimizer']['param_groups']) > 1
    run_tool('train.py', str(config), '--work-dir', str(work_dir), '--resume',
             '--cfg-options', 'train_cfg.max_iters=3', *TINY_DATA)
    assert load_state(str(work_dir / 'iter_3.pth'))['meta']['iter'] == 3
