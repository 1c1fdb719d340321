"""Shared fixtures: tiny CPU versions of mmseg's own base models, real data."""
import os

# one torch thread per test process (tools/run_tests.sh runs one per core), set
# before torch starts its thread pool: run_tool forks, and a fork after a
# multi-threaded OpenMP region is not safe
os.environ.setdefault('OMP_NUM_THREADS', '1')

import copy  # noqa: E402
import ctypes  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import os.path as osp
import runpy
import subprocess
import sys
import tempfile
import textwrap
import traceback

import numpy as np
import pytest
import torch
from PIL import Image
from mmengine.hub import get_config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData

import mmseg_dnc  # noqa: F401  (registers DNCDecodeHead)
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules
from mmseg_dnc.utils import replace_sync_bn

register_all_modules(init_default_scope=True)  # as mmseg's tools do

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# a small real sample committed with the tests (tests/data/README.md): the suite
# needs nothing beside the clone
TEST_DATA = osp.join(ROOT, 'tests', 'data')
CAMVID = osp.join(TEST_DATA, 'camvid')

# the CPU-sized training config that the tool tests run, on real CamVid files
TINY_CONFIG = osp.join(ROOT, 'tests', 'configs', 'fcn_r18_camvid_tiny.py')
TINY_DATA = [f'{loader}.dataset.data_root={CAMVID}'
             for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def config_with_hooks(tmp_path, *hooks: str) -> str:
    """The tiny config with ``custom_hooks`` (written as code, e.g.
    ``"dict(type='RecordAssignmentsHook')"``) of tests/train_hooks.py."""
    path = tmp_path / 'with_hooks.py'
    path.write_text(textwrap.dedent(f"""\
        _base_ = '{TINY_CONFIG}'
        custom_imports = dict(imports=['mmseg_dnc', 'tests.train_hooks'])
        custom_hooks = [{', '.join(hooks)}]
        """))
    return str(path)

# mmseg's base model configs, shrunk for a 2-core CPU: ResNet-18 instead of 50 at
# a quarter of its width (stages 16..128 channels), Swin with embed_dims 16 and
# one block per stage.
BASE_MODELS = {
    'FCNHead': 'mmseg::_base_/models/fcn_r50-d8.py',
    'ASPPHead': 'mmseg::_base_/models/deeplabv3_r50-d8.py',
    'UPerHead': 'mmseg::_base_/models/upernet_swin.py',
}


@functools.lru_cache(maxsize=None)
def _base_model(decoder: str):
    # get_config parses the config (and, uncached, mmseg's 52 metafiles) on every call
    return get_config(BASE_MODELS[decoder]).model


def _done_once_for_every_child() -> None:
    """What each tool run would otherwise redo, done once in this process so
    that run_tool's forked children inherit it (the suite forks a hundred):
    the imports a first optimizer and an ``mmseg::`` base make on the way
    (torch._dynamo, pkg_resources), and two pure functions of inputs that do
    not change while the suite runs, memoised for the tests only: mmengine
    parses all of mmseg's metafiles again for each ``mmseg::`` base a config
    names, and formats the same config text with yapf for the log, the dump and
    every checkpoint it saves. Values are what mmengine computes; a cached
    metafile is handed out as a copy."""
    import pkg_resources  # noqa: F401
    import torch._dynamo  # noqa: F401
    from mmengine.config import config as mm_config
    from mmengine.config import utils as mm_config_utils

    load = mm_config_utils.load

    @functools.lru_cache(maxsize=None)
    def parsed(path: str, mtime: float):
        return load(path)

    def cached_load(path, *args, **kwargs):
        if args or kwargs or not str(path).endswith('.yml'):
            return load(path, *args, **kwargs)
        return copy.deepcopy(parsed(str(path), os.path.getmtime(path)))

    format_code, formatted = mm_config.FormatCode, {}

    def cached_format_code(text, style_config=None, **kwargs):
        if kwargs:
            return format_code(text, style_config=style_config, **kwargs)
        key = text, repr(style_config)
        if key not in formatted:
            formatted[key] = format_code(text, style_config=style_config)
        return formatted[key]

    mm_config_utils.load = cached_load
    mm_config.FormatCode = cached_format_code
    _base_model('FCNHead')  # reads every metafile into the cache


_done_once_for_every_child()


def tiny_model_cfg(decoder: str, num_classes: int = 5, dnc: bool = True,
                   **dnc_keys):
    """mmseg's base model for ``decoder``, shrunk, with the head swapped to DNC."""
    model = copy.deepcopy(_base_model(decoder))
    replace_sync_bn(model)
    model.pretrained = None
    model.data_preprocessor.size_divisor = 32
    if decoder == 'UPerHead':
        model.backbone.update(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
                              window_size=4, pretrain_img_size=64, drop_path_rate=0.0)
        model.decode_head.update(in_channels=[16, 32, 64, 128], channels=32)
        model.auxiliary_head.update(in_channels=64, channels=16)
    else:
        model.backbone.update(depth=18, stem_channels=16, base_channels=16, init_cfg=None)
        model.decode_head.update(in_channels=128, channels=32)
        model.auxiliary_head.update(in_channels=64, channels=16)
    model.decode_head.num_classes = model.auxiliary_head.num_classes = num_classes
    if dnc:
        model.decode_head.update(type='DNCDecodeHead', decoder=decoder, **dnc_keys)
    return model


def build_model(decoder: str, num_classes: int = 5, **dnc_keys):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(decoder, num_classes, **dnc_keys))
    model.init_weights()
    return model


def make_batch(labels: torch.Tensor, seed: int = 0) -> dict:
    """A data batch as mmseg's dataloader gives it: uint8 images, gt maps.

    Args:
        labels (Tensor): (B, H, W) int64 label maps.
    """
    gen = torch.Generator().manual_seed(seed)
    b, h, w = labels.shape
    inputs = [torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
              for _ in range(b)]
    samples = []
    for label in labels:
        sample = SegDataSample(gt_sem_seg=PixelData(data=label[None].clone()))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture(params=list(BASE_MODELS))
def decoder(request):
    return request.param


def camvid_available() -> bool:
    return osp.isdir(osp.join(CAMVID, 'train'))


def not_blank(path) -> bool:
    """A picture with something drawn in it (a blank PNG has a size too)."""
    return np.asarray(Image.open(path).convert('L')).std() > 10


def assert_same_training_state(expected: dict, actual: dict) -> None:
    """Two checkpoints hold the same training state, bitwise: iteration, every
    state_dict tensor, the optimizer's state and groups, the schedulers."""
    assert expected['meta']['iter'] == actual['meta']['iter']
    assert expected['state_dict'].keys() == actual['state_dict'].keys()
    for key, value in expected['state_dict'].items():
        assert torch.equal(value, actual['state_dict'][key]), key
    for param, state in expected['optimizer']['state'].items():
        for name, value in state.items():
            assert torch.equal(value, actual['optimizer']['state'][param][name]), (param, name)
    assert expected['optimizer']['param_groups'] == actual['optimizer']['param_groups']
    assert expected['param_schedulers'] == actual['param_schedulers']


def _as_a_fresh_process(stdout, stderr) -> None:
    """In a forked child, what a fresh interpreter would not have from this
    one: pytest's root log handlers, mmengine's loggers and default scope
    (the tool makes its own); sys.stdout/err and the stream handlers of the
    other loggers made before the fork go to ``stdout`` and ``stderr``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    MMLogger._instance_dict.clear()
    DefaultScope._instance_dict.clear()
    old_err = (sys.stderr, sys.__stderr__)
    for logger in logging.Logger.manager.loggerDict.values():
        for handler in getattr(logger, 'handlers', ()):
            if type(handler) is logging.StreamHandler:
                handler.setStream(stderr if handler.stream in old_err else stdout)
    sys.stdout, sys.stderr = stdout, stderr
    os.environ['PYTHONPATH'] = os.pathsep.join(
        p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)


def run_tool(tool, *args, check=True) -> subprocess.CompletedProcess:
    """``python tools/<tool> args...`` from the project root, tests/ importable
    (configs may import the helper hooks of tests/train_hooks.py), as a
    process of its own: a child forked from this one, which has torch, mmseg
    and mmseg_dnc imported already (a fresh interpreter spends seconds on
    that). Whatever the tool changes or does to itself (a kill) stays in the
    child. Returns its exit status (-N: killed by signal N), stdout, stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        # the child's garbage collector leaves this process's objects alone (it
        # would otherwise touch, and so copy, every page of their heap)
        gc.freeze()
        pid = os.fork()
        if pid:
            gc.unfreeze()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                _as_a_fresh_process(open(1, 'w', buffering=1, closefd=False),
                                    open(2, 'w', buffering=1, closefd=False))
                os.chdir(ROOT)
                sys.path.insert(0, ROOT)
                sys.argv = [osp.join(ROOT, 'tools', tool), *map(str, args)]
                runpy.run_path(sys.argv[0], run_name='__main__')
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (
                    0 if stop.code is None else (print(stop.code, file=sys.stderr) or 1))
            except BaseException:  # noqa: BLE001  (reported as an interpreter would)
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                ctypes.CDLL(None).fflush(None)  # C-level output too
                os._exit(code)
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # interrupted: leave no child running
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise
        returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        proc = subprocess.CompletedProcess(
            [sys.executable, osp.join(ROOT, 'tools', tool), *args], returncode,
            out.read().decode(errors='replace'), err.read().decode(errors='replace'))
    if check and proc.returncode != 0:
        raise AssertionError(f'{tool} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    """2 iterations, then resumed to 4: (work_dir, train log of the resume)."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    run_tool('train.py', TINY_CONFIG, '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_iters=2', *TINY_DATA)
    resumed = run_tool('train.py', TINY_CONFIG, '--work-dir', work_dir, '--resume',
                       '--cfg-options', 'train_cfg.max_iters=4', *TINY_DATA)
    return work_dir, resumed.stdout + resumed.stderr


@pytest.fixture
def warnings_logged():
    """The warnings that mmengine's current logger gets during a test."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
