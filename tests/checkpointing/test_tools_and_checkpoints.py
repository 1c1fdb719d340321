"""tools/train.py and tools/test.py on real CamVid files through mmseg's
loaders; checkpoints loaded with the weights-only unpickler on every path."""
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from mmseg.apis import init_model
from mmseg_dnc.checkpointing import (CorruptCheckpointError, MalformedCheckpointError,
                                     UntrustedCheckpointError)
from mmseg_dnc.checkpointing import load_checkpoint_file as load_state
from mmseg_dnc.checkpointing.schema import describe
from ..conftest import TINY_CONFIG as CONFIG
from ..conftest import TINY_DATA as DATA
from ..conftest import CAMVID, run_tool


def test_train_resume_and_losses_logged(trained):
    work_dir, log = trained
    assert 'resumed epoch: 0, iter: 2' in log
    for key in ('decode.loss_ce', 'decode.loss_ppc', 'decode.loss_ppd', 'aux.loss_ce'):
        assert key in log
    first, second = (load_state(osp.join(work_dir, f'iter_{i}.pth')) for i in (2, 4))
    assert second['meta']['iter'] == 4
    sub2 = first['state_dict']['decode_head.sub_centroids']
    sub4 = second['state_dict']['decode_head.sub_centroids']
    assert sub2.shape == (11, 10, 32) and not torch.equal(sub2, sub4)
    assert 'decode_head.conv_seg.weight' not in second['state_dict']
    # resume restored the optimizer's state and the message hub
    assert second['optimizer']['state'] and 'log_scalars' in second['message_hub']


def test_test_tool_prints_miou(trained, tmp_path):
    work_dir, _ = trained
    proc = run_tool('test.py', CONFIG, osp.join(work_dir, 'iter_4.pth'), '--work-dir',
                    str(tmp_path), '--cfg-options', *DATA)
    out = proc.stdout + proc.stderr
    assert 'mIoU' in out and 'Pedestrian' in out and 'aAcc' in out


def test_init_model_loads_weights_only(trained):
    work_dir, _ = trained
    ckpt = osp.join(work_dir, 'iter_4.pth')
    model = init_model(CONFIG, ckpt, device='cpu')
    expected = load_state(ckpt)['state_dict']['decode_head.sub_centroids']
    assert torch.equal(model.decode_head.sub_centroids, expected)
    assert model.dataset_meta['classes'][0] == 'Sky'
    # what mmengine's checkpoints need was allowed while loading, not globally
    allowed = torch.serialization.get_safe_globals()
    assert HistoryBuffer not in allowed
    assert not any(isinstance(g, tuple) and g[1] == 'builtins.getattr' for g in allowed)


class RunsCode:
    """A pickled object that would create a file if it were ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.fixture(scope='module')
def evil(trained, tmp_path_factory):
    """A real checkpoint with a payload in its meta, and the file the payload
    would create: (path, marker)."""
    work_dir, _ = trained
    tmp = tmp_path_factory.mktemp('evil')
    ckpt = load_state(osp.join(work_dir, 'iter_4.pth'))
    marker = str(tmp / 'pwned')
    ckpt['meta']['payload'] = RunsCode(marker)
    path = str(tmp / 'evil.pth')
    torch.save(ckpt, path)
    # a harmless case base beside it, so the explanation tools go on to the checkpoint
    torch.save({'score': torch.zeros(1)}, tmp / 'evil.casebase.pth')
    return path, marker


def test_untrusted_checkpoint_is_refused_by_init_model(evil):
    path, marker = evil
    with pytest.raises(UntrustedCheckpointError, match='Refused to load .*evil.pth'):
        init_model(CONFIG, path, device='cpu')
    assert not os.path.exists(marker)


def resume_dir(tmp_path, checkpoint):
    """A work dir whose last_checkpoint names ``checkpoint``, as --resume reads it."""
    work_dir = tmp_path / 'resume'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(checkpoint)
    return str(work_dir)


TOOL_RUNS = {
    'test.py': lambda ckpt, tmp: ['test.py', CONFIG, ckpt, '--work-dir', str(tmp / 'wd'),
                                  '--cfg-options', *DATA],
    'train.py load_from': lambda ckpt, tmp: [
        'train.py', CONFIG, '--work-dir', str(tmp / 'wd'), '--cfg-options',
        f'load_from={ckpt}', 'train_cfg.max_iters=1', *DATA],
    'train.py --resume': lambda ckpt, tmp: [
        'train.py', CONFIG, '--work-dir', resume_dir(tmp, ckpt), '--resume', '--cfg-options',
        'train_cfg.max_iters=6', *DATA],
    'snap_subcentroids.py': lambda ckpt, tmp: [
        'snap_subcentroids.py', CONFIG, ckpt, '--data-root', CAMVID,
        '--work-dir', str(tmp / 'wd')],
    'explain_prediction.py': lambda ckpt, tmp: [
        'explain_prediction.py', CONFIG, ckpt, osp.join(CAMVID, 'val', '0016E5_07959.png'),
        '--out', str(tmp / 'panel.png')],
    'subcentroid_gallery.py': lambda ckpt, tmp: [
        'subcentroid_gallery.py', CONFIG, ckpt, '--out-dir', str(tmp / 'gallery')],
}


@pytest.mark.parametrize('run', list(TOOL_RUNS))
def test_untrusted_checkpoint_is_refused_by_every_tool(run, evil, tmp_path):
    path, marker = evil
    proc = run_tool(*TOOL_RUNS[run](path, tmp_path), check=False)
    assert proc.returncode != 0
    assert 'UntrustedCheckpointError: Refused to load' in proc.stderr and 'evil.pth' in proc.stderr
    assert "unpickling can run arbitrary code" in proc.stderr  # says why
    assert not os.path.exists(marker)


@pytest.mark.parametrize('tool', ['explain_prediction.py', 'subcentroid_gallery.py'])
def test_untrusted_case_base_is_refused(tool, trained, tmp_path):
    work_dir, _ = trained
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(open(osp.join(work_dir, 'iter_4.pth'), 'rb').read())
    marker = str(tmp_path / 'pwned')
    torch.save({'score': RunsCode(marker)}, tmp_path / 'model.casebase.pth')
    proc = run_tool(*TOOL_RUNS[tool](str(ckpt), tmp_path), check=False)
    assert proc.returncode != 0 and 'Refused to load' in proc.stderr
    assert 'model.casebase.pth' in proc.stderr and not os.path.exists(marker)


@pytest.mark.parametrize('run', ['train.py --resume', 'snap_subcentroids.py'])
def test_truncated_checkpoint_through_the_tools(run, trained, tmp_path):
    work_dir, _ = trained
    data = open(osp.join(work_dir, 'iter_4.pth'), 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 3])
    proc = run_tool(*TOOL_RUNS[run](str(cut), tmp_path), check=False)
    assert proc.returncode != 0
    assert 'CorruptCheckpointError' in proc.stderr and 'is truncated or corrupt' in proc.stderr
    assert 'resume from an earlier checkpoint' in proc.stderr


def test_truncated_checkpoint_gets_a_clear_error(trained, tmp_path):
    work_dir, _ = trained
    data = open(osp.join(work_dir, 'iter_4.pth'), 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match='truncated or corrupt'):
        init_model(CONFIG, str(cut), device='cpu')
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint' * 64)
    with pytest.raises(CorruptCheckpointError, match='junk.pth is not a readable'):
        init_model(CONFIG, str(junk), device='cpu')


def edited(trained, tmp_path, change) -> str:
    """iter_4.pth of the tiny run with ``change`` made to it, saved as tmp_path/edited.pth."""
    checkpoint = load_state(osp.join(trained[0], 'iter_4.pth'))
    change(checkpoint)
    torch.save(checkpoint, tmp_path / 'edited.pth')
    return str(tmp_path / 'edited.pth')


NOT_WEIGHTS = {'a list': [0.0], 'None': None, 'a string': 'decode_head.sub_centroids'}


def not_weights(kind):
    return lambda checkpoint: checkpoint.update(state_dict=NOT_WEIGHTS[kind])


@pytest.mark.parametrize('kind', list(NOT_WEIGHTS))
def test_a_state_dict_that_is_not_a_dict_is_refused_by_init_model(kind, trained, tmp_path):
    path = edited(trained, tmp_path, not_weights(kind))
    with pytest.raises(MalformedCheckpointError, match=re.escape(
            f"Refused to load {path}: checkpoint['state_dict'] must be a dict of tensors by "
            f"parameter name (what training saves), got {describe(NOT_WEIGHTS[kind])}.")):
        init_model(CONFIG, path, device='cpu')


@pytest.mark.parametrize('run, kind', [('test.py', 'a list'), ('train.py load_from', 'None'),
                                       ('train.py --resume', 'a string')])
def test_a_state_dict_that_is_not_a_dict_through_the_tools(run, kind, trained, tmp_path):
    path = edited(trained, tmp_path, not_weights(kind))
    proc = run_tool(*TOOL_RUNS[run](path, tmp_path), check=False)
    assert proc.returncode != 0 and 'AttributeError' not in proc.stderr
    assert (f"MalformedCheckpointError: Refused to load {path}: checkpoint['state_dict'] must "
            'be a dict of tensors by parameter name') in proc.stderr


def zero_subcentroids(checkpoint):
    checkpoint['state_dict']['decode_head.sub_centroids'].zero_()


@pytest.mark.parametrize('run', ['test.py', 'train.py load_from', 'train.py --resume'])
def test_zero_subcentroids_are_refused_on_every_path(run, trained, tmp_path):
    proc = run_tool(*TOOL_RUNS[run](edited(trained, tmp_path, zero_subcentroids), tmp_path),
                    check=False)
    assert proc.returncode != 0
    assert ('ValueError: decode_head.sub_centroids in the checkpoint holds 110 of 110 '
            'sub-centroids that are not unit vectors') in proc.stderr
    assert 'Iter(' not in proc.stdout + proc.stderr  # nothing evaluated or trained


def test_integer_subcentroids_are_refused_by_init_model(trained, tmp_path):
    def to_int(checkpoint):
        state = checkpoint['state_dict']
        state['decode_head.sub_centroids'] = state['decode_head.sub_centroids'].round().long()
    with pytest.raises(ValueError, match=r'decode_head.sub_centroids in the checkpoint is '
                                         r'torch.int64: sub-centroids are unit vectors'):
        init_model(CONFIG, edited(trained, tmp_path, to_int), device='cpu')
