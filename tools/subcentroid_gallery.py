"""What the sub-centroids stand for: per class, its K sub-centroids each shown
as its nearest training patches; a heat map of similarities between all
sub-centroids; and the diversity table (collapsed or not). A row titled
'border' is a sub-centroid shown mostly by pixels on the image's edge.

    python tools/subcentroid_gallery.py CONFIG CKPT [--classes NAME ...]
        [--out-dir DIR] [--case-base FILE] [--data-root DIR]

The same as ``python -m mmseg_dnc.tools.subcentroid_gallery`` (which holds the logic) and
the console script ``mmseg-dnc-gallery``.
"""
from mmseg_dnc.tools.subcentroid_gallery import main

if __name__ == '__main__':
    main()
