"""bench/ablation_figure.py: the paired gaps it draws, from hand-made records."""
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'bench'))
from ablation_figure import paired_gaps, plot_ablation, separation  # noqa: E402


def _record(variant, seed, miou, iters=600, near=None):
    metrics = dict(mIoU=miou)
    if near is not None:
        metrics['near_mean'] = near
    return dict(variant=variant, seed=seed, iters=iters, metrics=metrics)


RECORDS = [
    _record('twin', 0, 46.0), _record('twin', 1, 47.0), _record('twin', 0, 55.0, iters=1200),
    _record('dnc', 0, 45.5, near=0.2), _record('dnc', 1, 48.0, near=0.4),
    _record('dnc', 2, 50.0, near=0.6),  # no twin at seed 2: not paired
    _record('dnc', 0, 54.0, iters=1200, near=0.3),
]


def test_gaps_pair_by_seed_and_schedule():
    assert paired_gaps(RECORDS) == {(600, 'dnc'): {0: -0.5, 1: 1.0}, (1200, 'dnc'): {0: -1.0}}
    assert separation(RECORDS) == pytest.approx({(600, 'dnc'): 0.3, (1200, 'dnc'): 0.3})


def test_figure_is_drawn(tmp_path):
    path = plot_ablation(RECORDS, str(tmp_path / 'ablation.png'), ['twin', 'dnc'])
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_no_twin_to_pair_with_is_named(tmp_path):
    with pytest.raises(ValueError, match='run the twin first'):
        plot_ablation([_record('dnc', 0, 45.0)], str(tmp_path / 'a.png'), ['dnc'])
