"""Explain a DNC prediction with real training pixels: one PNG with the
prediction, the nearest sub-centroid map, a confidence map and, for chosen
pixels (default: the least and the most confident), the sub-centroids that
decided them and the training patches those stand for.

    python tools/explain_prediction.py CONFIG CKPT IMAGE [--points Y,X ...]
        [--out FILE.png] [--case-base FILE] [--data-root DIR] [--device cpu|cuda]

The same as ``python -m mmseg_dnc.tools.explain_prediction`` (which holds the logic) and
the console script ``mmseg-dnc-explain``.
"""
from mmseg_dnc.tools.explain_prediction import main

if __name__ == '__main__':
    main()
