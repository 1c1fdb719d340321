"""Snap sub-centroids to real training pixels: one pass over the training set
finds every sub-centroid's nearest pixels of its class and stores them beside
the checkpoint (CKPT.casebase.pth), with a diversity table.

    python tools/snap_subcentroids.py CONFIG CKPT [--data-root DIR] [--top-n 8]
        [--replace] [--device cpu|cuda]

The same as ``python -m mmseg_dnc.tools.snap_subcentroids`` (which holds the logic) and
the console script ``mmseg-dnc-snap``.
"""
from mmseg_dnc.tools.snap_subcentroids import main

if __name__ == '__main__':
    main()
