"""bench/camvid_refit.py: one Lloyd step of sub-centroids, by hand; and the run folder
lookup (camvid_fit.run_files) that it and the probe use."""
import os.path as osp
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'bench'))
from camvid_refit import lloyd_step  # noqa: E402


def test_lloyd_step_moves_each_sub_centroid_to_its_nearest_pixels_mean():
    sub = torch.tensor([[[1., 0.], [0., 1.]],    # class 0: k=0 along x, k=1 along y
                        [[0., 1.], [-1., 0.]]])  # class 1: no pixel nearest to k=1
    pixels = F.normalize(torch.tensor([[1., .2], [1., -.2], [.3, 1.],   # class 0
                                       [.6, .8], [0., 1.]]), dim=1)     # class 1
    labels = torch.tensor([0, 0, 0, 1, 1])
    new = lloyd_step(sub, pixels, labels)
    # class 0, k=0: the mean of (1, .2) and (1, -.2) normalised, k=1: (.3, 1) normalised
    # (class 1's pixels, nearer to (0, 1) than (.3, 1) is, do not count for class 0)
    torch.testing.assert_close(new[0], torch.tensor([[1., 0.], [.3 / 1.09 ** .5, 1. / 1.09 ** .5]]))
    # class 1, k=0: the mean of (.6, .8) and (0, 1), normalised; k=1 won nothing: unchanged
    torch.testing.assert_close(new[1, 0], F.normalize(torch.tensor([.3, .9]), dim=0))
    torch.testing.assert_close(new[1, 1], torch.tensor([-1., 0.]))


def test_run_files_takes_the_last_checkpoint_not_a_case_base(tmp_path):
    from camvid_fit import run_files
    for name in ('cfg.py', 'iter_300.pth', 'iter_1200.pth', 'iter_1200.casebase.pth',
                 'best_mIoU_iter_1200.pth'):
        (tmp_path / name).write_text('')
    assert run_files(str(tmp_path)) == (str(tmp_path / 'cfg.py'), str(tmp_path / 'iter_1200.pth'))
