"""On mmcv-lite, plain mmseg works without ``import mmseg_dnc`` first: the
installed ``mmseg_dnc_mmcv_lite.pth`` adds an import finder at start-up that
makes ``mmcv.ops`` a stand-in only when mmcv has no compiled ``_ext``. Each
case runs in a fresh interpreter, outside the source tree."""
import os
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from .conftest import TINY_CONFIG


def python(code: str, cwd, pythonpath: str = ''):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    if pythonpath:
        env['PYTHONPATH'] = pythonpath
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.fixture(scope='module', autouse=True)
def installed():
    pth = os.path.join(sysconfig.get_path('purelib'), 'mmseg_dnc_mmcv_lite.pth')
    assert os.path.isfile(pth), (f'{pth} is missing: reinstall the package '
                                 '(bash tools/setup_env.sh)')


def test_start_up_adds_the_finder_and_imports_nothing_else(tmp_path):
    proc = python("""
        import sys
        from mmseg_dnc_mmcv_lite import MmcvOpsFinder
        print(sys.meta_path[0] is MmcvOpsFinder,
              [m for m in ('mmcv', 'torch', 'mmseg', 'mmseg_dnc', 'numpy') if m in sys.modules])
        """, tmp_path)
    assert proc.stdout.split('\n')[0] == 'True []', proc.stderr


def test_init_model_without_importing_mmseg_dnc(trained, tmp_path):
    work_dir, _ = trained
    proc = python(f"""
        import sys
        from mmseg.apis import init_model  # on main: No module named 'mmcv._ext'
        assert 'mmseg_dnc' not in sys.modules
        model = init_model({TINY_CONFIG!r}, {work_dir + '/iter_4.pth'!r}, device='cpu')
        print('head:', type(model.decode_head).__name__)
        from mmcv.ops import point_sample
        point_sample(None, None)
        """, tmp_path)
    assert 'head: DNCFCNHead' in proc.stdout.splitlines(), proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        'RuntimeError: mmcv.ops.point_sample needs the compiled ops of full mmcv, but this '
        'environment has mmcv-lite, which has none. The DNC heads on FCN, DeepLabV3 and '
        'UPerNet do not need it; for point_sample, install full mmcv 2.1.0 '
        '(`pip install -U openmim && mim install "mmcv==2.1.0"`).')


@pytest.mark.parametrize('full', [True, False], ids=['full mmcv', 'mmcv-lite'])
def test_full_mmcv_loads_its_own_ops(full, tmp_path):
    """A stand-in mmcv package first on the path, with or without a compiled _ext."""
    package = tmp_path / 'site' / 'mmcv'
    (package / 'ops').mkdir(parents=True)
    (package / '__init__.py').write_text('')
    (package / 'ops' / '__init__.py').write_text(
        'from .._ext import nms\n' if full else 'import mmcv._ext\n')
    if full:
        (package / '_ext.py').write_text('def nms():\n    return "compiled nms"\n')
    proc = python('import mmcv.ops; print(mmcv.ops.nms.__name__, mmcv.ops.nms.__module__)',
                  tmp_path, pythonpath=str(tmp_path / 'site'))
    expected = 'nms mmcv._ext' if full else 'nms mmseg_dnc_mmcv_lite'
    assert proc.stdout.strip() == expected, proc.stderr
