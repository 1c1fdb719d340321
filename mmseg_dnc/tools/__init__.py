"""The train and test command lines, runnable from an installed package:

    python -m mmseg_dnc.tools.train CONFIG ...     (console script: mmseg-dnc-train)
    python -m mmseg_dnc.tools.test CONFIG CKPT ... (console script: mmseg-dnc-test)

CONFIG is a file or ``mmseg_dnc::dnc/x.py``. The repository's tools/train.py
and tools/test.py call these.
"""
