"""Print the table of which mmseg decode heads carry DNC: for every decode head
in mmseg's registry, its mmseg model shrunk to CPU size with DNC swapped in, one
training step and one predict on real CamVid crops (mmseg_dnc.zoo).

    python tools/dnc_zoo_check.py [--camvid tests/data/camvid] [HEAD ...]
"""
import argparse
import contextlib
import os.path as osp
import sys

from mmengine.logging import MMLogger

import mmseg_dnc  # noqa: F401  (registers DNCDecodeHead)
from mmseg.utils import register_all_modules
from mmseg_dnc.zoo import check_zoo, format_table
from mmseg_dnc.zoo.check import FAILS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('heads', nargs='*', help='decode head types (default: all)')
    parser.add_argument('--camvid', default=osp.join(ROOT, 'tests', 'data', 'camvid'),
                        help='a CamVid folder with train/ and trainannot/')
    args = parser.parse_args()
    register_all_modules(init_default_scope=True)
    MMLogger.get_instance('mmengine', log_level='WARNING')  # no init_weights report
    # stdout is the table only: mmseg's own prints (MSCAN's 'init cfg None') go to stderr
    with contextlib.redirect_stdout(sys.stderr):
        results = check_zoo(args.camvid, args.heads)
    print(format_table(results))
    return 1 if any(r.status == FAILS for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
