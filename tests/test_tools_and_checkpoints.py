"""tools/train.py and tools/test.py on real CamVid files through mmseg's
loaders; checkpoints loaded with the weights-only unpickler on every path."""
import os
import os.path as osp

import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from mmseg.apis import init_model
from mmseg_dnc.checkpoint import CorruptCheckpointError, UntrustedCheckpointError
from mmseg_dnc.checkpoint import load_checkpoint_file as load_state
from .conftest import TINY_CONFIG as CONFIG
from .conftest import TINY_DATA as DATA
from .conftest import run_tool

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


def test_untrusted_checkpoint_is_refused_everywhere(trained, tmp_path):
    work_dir, _ = trained
    ckpt = load_state(osp.join(work_dir, 'iter_4.pth'))
    marker = str(tmp_path / 'pwned')
    ckpt['meta']['payload'] = RunsCode(marker)
    evil = str(tmp_path / 'evil.pth')
    torch.save(ckpt, evil)
    with pytest.raises(UntrustedCheckpointError, match='Refused to load .*evil.pth'):
        init_model(CONFIG, evil, device='cpu')
    proc = run_tool('test.py', CONFIG, evil, '--work-dir', str(tmp_path / 'wd'),
                    '--cfg-options', *DATA, check=False)
    assert proc.returncode != 0 and 'Refused to load' in proc.stderr
    proc = run_tool('train.py', CONFIG, '--work-dir', str(tmp_path / 'wd2'), '--cfg-options',
                    f'load_from={evil}', 'train_cfg.max_iters=1', *DATA, check=False)
    assert proc.returncode != 0 and 'Refused to load' in proc.stderr
    assert not os.path.exists(marker)


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
