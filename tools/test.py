"""Test a segmentor and print per-class IoU, mIoU, mAcc and aAcc: mmseg's
tools/test.py, with DNC registered, safe checkpoint loading and CPU support.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--wait-time S] [--tta] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

The same as ``python -m mmseg_dnc.tools.test`` (which holds the logic) and
the console script ``mmseg-dnc-test``.
"""
from mmseg_dnc.tools.test import main

if __name__ == '__main__':
    main()
