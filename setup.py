from setuptools import find_packages, setup

setup(
    name='mmseg_dnc',
    version='0.1.0',
    description='Deep Nearest Centroids (DNC) decode head for mmsegmentation 1.x',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmseg_dnc', 'mmseg_dnc.*']),
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
    ],
    extras_require={'tests': ['pytest']},
)
