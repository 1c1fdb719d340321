"""K per class from pixel frequency, for a config's training set.

    python tools/k_per_class.py CONFIG [--data-root DIR] [--mean-k 10]
        [--k-min 2] [--k-max 20]
    python tools/train.py CONFIG --cfg-options "model.decode_head.num_subcentroids=[...]"

The same as ``python -m mmseg_dnc.tools.k_per_class`` (which holds the logic) and
the console script ``mmseg-dnc-k-per-class``.
"""
from mmseg_dnc.tools.k_per_class import main

if __name__ == '__main__':
    main()
