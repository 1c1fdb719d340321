"""The package stands alone: its wheel, installed (not editable) into a fresh
virtual environment, reaches its configs as ``mmseg_dnc::dnc/...`` (in a
``_base_`` and through ``mmengine.hub``), trains, tests and counts K per class
through its own entry points, from a folder outside the checkout, on real
CamVid files.

The wheel is built from a copy of this checkout's sources (so that nothing is
written into the checkout). The fresh environment gets torch, mmcv-lite,
mmengine and mmseg from the running one through a ``.pth`` line that puts
its site-packages on ``sys.path``: nothing is downloaded. That folder is not
a site dir there, so its ``.pth`` files, among them the editable install's
path hook for ``mmseg_dnc``, are not run; the test checks that ``mmseg_dnc``
is the wheel's.
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest
import torch
import yaml

from mmseg_dnc.checkpoint import load_checkpoint_file
from .conftest import CAMVID, ROOT

CONFIG = 'mmseg_dnc::dnc/fcn_cgnet_camvid.py'
# console script (mmseg-dnc-NAME) -> module of mmseg_dnc.tools
TOOLS = {'train': 'train', 'test': 'test', 'snap': 'snap_subcentroids',
         'k-per-class': 'k_per_class', 'explain': 'explain_prediction',
         'gallery': 'subcentroid_gallery'}
# what setup.py does not package; everything else of the checkout is copied
NOT_PACKAGED = {'.git', '.venv', 'build', 'dist', 'work_dirs', 'data', 'tests', 'bench', 'docs',
                '.pytest_cache'}
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
DATA = [option for loader in LOADERS for option in (
    f'{loader}.dataset.data_root={CAMVID}', f'{loader}.num_workers=0',
    f'{loader}.persistent_workers=False')]


def run(*command, cwd) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd`` with no PYTHONPATH and no user site; it must succeed."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    env['PYTHONNOUSERSITE'] = '1'
    proc = subprocess.run([str(part) for part in command], cwd=cwd, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f'{command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc


def log_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def _not_packaged(folder, names):
    """shutil.copytree's ignore: NOT_PACKAGED at the top, caches and build metadata anywhere."""
    return [name for name in names if name == '__pycache__' or name.endswith('.egg-info')
            or (folder == ROOT and name in NOT_PACKAGED)]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel of this checkout, built offline with the running environment's setuptools."""
    tmp = tmp_path_factory.mktemp('wheel')
    shutil.copytree(ROOT, tmp / 'src', ignore=_not_packaged)
    run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
        '--no-index', '-q', '-w', tmp / 'dist', tmp / 'src', cwd=tmp)
    (path,) = (tmp / 'dist').glob('mmseg_dnc-*.whl')
    yield path
    shutil.rmtree(tmp)


@pytest.fixture(scope='module')
def venv(wheel, tmp_path_factory):
    """A fresh virtual environment with the wheel installed (not editable)."""
    env = tmp_path_factory.mktemp('venv') / 'venv'
    run(sys.executable, '-m', 'venv', '--without-pip', env, cwd=env.parent)
    python = env / 'bin' / 'python'
    run(sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '--no-index',
        '-q', wheel, cwd=env.parent)
    site = run(python, '-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])",
               cwd=env.parent).stdout.strip()
    ours = {sysconfig.get_paths()[key] for key in ('purelib', 'platlib')}
    with open(osp.join(site, 'running_environment.pth'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(sorted(ours)) + '\n')
    yield env
    shutil.rmtree(env.parent)


def test_wheel_carries_configs_index_and_tools(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        index = yaml.safe_load(archive.read('mmseg_dnc/.mim/model-index.yml'))
        (entry_points,) = (n for n in names if n.endswith('.dist-info/entry_points.txt'))
        scripts = archive.read(entry_points).decode()
        configs = [yaml.safe_load(archive.read(f'mmseg_dnc/.mim/{metafile}'))
                   for metafile in index['Import']]
    for relative in ('dnc/fcn_cgnet_camvid.py', 'parametric/fcn_cgnet_camvid.py',
                     '_base_/datasets/camvid.py'):
        assert f'mmseg_dnc/.mim/configs/{relative}' in names
    for meta in configs:  # every config the index names is in the wheel
        for model in meta['Models']:
            assert f"mmseg_dnc/.mim/{model['Config']}" in names
    for script, module in TOOLS.items():
        assert f'mmseg_dnc/tools/{module}.py' in names
        assert f'mmseg-dnc-{script} = mmseg_dnc.tools.{module}:main' in scripts


def test_installed_package_reaches_configs_trains_and_tests(venv, tmp_path):
    assert osp.isdir(osp.join(CAMVID, 'train')), f'real CamVid data missing at {CAMVID}'
    python = venv / 'bin' / 'python'
    (tmp_path / 'my_config.py').write_text(f"_base_ = '{CONFIG}'\n")
    # the wheel's mmseg_dnc, its configs, a _base_ through the prefix, and
    # mmengine.hub's get_config (also one imported before mmseg_dnc) and get_model
    found = run(python, '-c', '; '.join([
        'from mmengine.hub import get_config', 'import json, mmengine.hub, mmseg_dnc',
        'from mmengine.config import Config',
        'from mmseg_dnc.package_configs import config_root',
        "cfg = Config.fromfile('my_config.py')",
        f'hub = [get_config({CONFIG!r}).filename, mmengine.hub.get_config({CONFIG!r}).filename]',
        f'model = mmengine.hub.get_model({CONFIG!r})',
        'print(json.dumps([mmseg_dnc.__file__, config_root(), cfg.model.decode_head.type, '
        'hub, isinstance(model.decode_head, mmseg_dnc.DNCDecodeHead)]))',
    ]), cwd=tmp_path).stdout
    package_file, config_root, head, hub, built = json.loads(found.strip().splitlines()[-1])
    assert osp.realpath(package_file).startswith(osp.realpath(venv) + os.sep)
    assert config_root == osp.join(osp.dirname(package_file), '.mim', 'configs')
    assert head == 'DNCDecodeHead' and built
    assert hub == [osp.join(config_root, 'dnc', 'fcn_cgnet_camvid.py')] * 2

    work_dir = tmp_path / 'train'
    log = log_of(run(python, '-m', 'mmseg_dnc.tools.train', CONFIG, '--work-dir', work_dir,
                     '--cfg-options', 'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
                     'default_hooks.logger.interval=1', *DATA, cwd=tmp_path))
    assert 'decode.loss_ppc' in log
    checkpoint = load_checkpoint_file(str(work_dir / 'iter_2.pth'))
    assert checkpoint['meta']['iter'] == 2
    sub_centroids = checkpoint['state_dict']['decode_head.sub_centroids']
    # the CamVid config's K per class: the largest is 20
    assert sub_centroids.shape[:2] == (11, 20) and torch.isfinite(sub_centroids).all()

    # the console script, on the config that inherits through the prefix
    out = log_of(run(venv / 'bin' / 'mmseg-dnc-test', 'my_config.py', work_dir / 'iter_2.pth',
                     '--work-dir', tmp_path / 'test', '--cfg-options', *DATA, cwd=tmp_path))
    assert 'mIoU' in out and 'Pedestrian' in out and 'aAcc' in out

    # a tool moved into the package, by its console script
    out = run(venv / 'bin' / 'mmseg-dnc-k-per-class', 'my_config.py', '--cfg-options',
              f'train_dataloader.dataset.data_root={CAMVID}', cwd=tmp_path).stdout
    assert '| Pedestrian |' in out and 'model.decode_head.num_subcentroids=[' in out
    for script in TOOLS:
        assert (venv / 'bin' / f'mmseg-dnc-{script}').is_file()
