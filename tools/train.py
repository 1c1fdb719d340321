"""Train a segmentor: mmseg's tools/train.py, with DNC registered and CPU support.

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

The same as ``python -m mmseg_dnc.tools.train`` (which holds the logic) and
the console script ``mmseg-dnc-train``.
"""
from mmseg_dnc.tools.train import main

if __name__ == '__main__':
    main()
