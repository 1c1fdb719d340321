"""The command lines, runnable from an installed package:

    python -m mmseg_dnc.tools.train CONFIG ...      (console script: mmseg-dnc-train)
    python -m mmseg_dnc.tools.test CONFIG CKPT ...  (console script: mmseg-dnc-test)
    python -m mmseg_dnc.tools.snap_subcentroids CONFIG CKPT ...        (mmseg-dnc-snap)
    python -m mmseg_dnc.tools.k_per_class CONFIG ...                   (mmseg-dnc-k-per-class)
    python -m mmseg_dnc.tools.explain_prediction CONFIG CKPT IMAGE ... (mmseg-dnc-explain)
    python -m mmseg_dnc.tools.subcentroid_gallery CONFIG CKPT ...      (mmseg-dnc-gallery)

CONFIG of train and test is a file or ``mmseg_dnc::dnc/x.py``. The
repository's tools/<name>.py call these, with the same flags.
"""
