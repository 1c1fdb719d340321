"""What the user names as a checkpoint, and what --resume finds: an empty
file, a directory, an empty or dangling last_checkpoint, nothing to resume.
Each gets an error that says what is wrong with it and what to do."""
import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

from mmseg.apis import MMSegInferencer, init_model
from mmseg_dnc.checkpointing import CorruptCheckpointError, load_checkpoint_file
from ..conftest import TINY_CONFIG, TINY_DATA, run_tool


@pytest.mark.parametrize('load', [
    load_checkpoint_file,
    lambda path: CheckpointLoader.load_checkpoint(path, map_location='cpu'),
    lambda path: init_model(TINY_CONFIG, path, device='cpu'),
], ids=['load_checkpoint_file', 'mmengine CheckpointLoader', 'init_model'])
def test_an_empty_file_is_a_corrupt_checkpoint(load, tmp_path):
    empty = tmp_path / 'iter_8.pth'
    empty.touch()
    with pytest.raises(CorruptCheckpointError, match=f'{empty} is not a readable PyTorch '
                       r'checkpoint: it is empty \(0 bytes\)'):
        load(str(empty))


@pytest.mark.parametrize('tool', ['test.py', 'train.py --resume'])
def test_an_empty_file_through_the_tools(tool, tmp_path):
    empty = tmp_path / 'iter_8.pth'
    empty.touch()
    if tool == 'test.py':
        args = ['test.py', TINY_CONFIG, str(empty), '--work-dir', str(tmp_path / 'wd')]
    else:
        (tmp_path / 'last_checkpoint').write_text(str(empty))
        args = ['train.py', TINY_CONFIG, '--work-dir', str(tmp_path), '--resume']
    proc = run_tool(*args, '--cfg-options', *TINY_DATA, check=False)
    assert proc.returncode != 0
    assert f'CorruptCheckpointError: {empty} is not a readable PyTorch checkpoint: it is ' \
           'empty (0 bytes)' in proc.stderr


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(IsADirectoryError, match=f'{tmp_path} is a directory, not a checkpoint'):
        load_checkpoint_file(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='No checkpoint file given'):
        load_checkpoint_file('')


@pytest.mark.parametrize('last_checkpoint', [None, '', '\n', 'missing.pth'])
def test_resume_with_nothing_to_resume_names_the_work_dir(last_checkpoint, tmp_path):
    if last_checkpoint is not None:
        (tmp_path / 'last_checkpoint').write_text(
            last_checkpoint.replace('missing.pth', str(tmp_path / 'missing.pth')))
    proc = run_tool('train.py', TINY_CONFIG, '--work-dir', str(tmp_path), '--resume',
                    '--cfg-options', *TINY_DATA, check=False)
    assert proc.returncode != 0
    error = proc.stderr.strip().splitlines()[-1]
    if last_checkpoint is None:
        assert error.startswith(f'FileNotFoundError: --resume: nothing to resume in the work '
                                f'dir {tmp_path}: it has no last_checkpoint file')
    elif last_checkpoint.strip():
        assert error.startswith(f'FileNotFoundError: --resume: {tmp_path}/last_checkpoint names '
                                f'{tmp_path}/missing.pth, which does not exist')
    else:
        assert error.startswith(f'ValueError: --resume: {tmp_path}/last_checkpoint is empty')
    assert 'drop --resume' in error and 'load_from=CHECKPOINT' in error
    assert 'Iter(train)' not in proc.stdout + proc.stderr  # nothing trained from scratch


def test_inferencer_without_a_config_does_not_execute_the_checkpoints(trained, tmp_path):
    work_dir, _ = trained
    checkpoint = load_checkpoint_file(f'{work_dir}/iter_4.pth')
    marker = tmp_path / 'pwned'
    checkpoint['message_hub']['runtime_info']['cfg'] = \
        f"x = __import__('os').system('touch {marker}')"
    torch.save(checkpoint, tmp_path / 'evil.pth')
    with pytest.raises(ValueError, match='without a config: mmengine would then execute'):
        MMSegInferencer(model=None, weights=str(tmp_path / 'evil.pth'), device='cpu')
    assert not marker.exists()
