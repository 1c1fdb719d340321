"""bench/camvid_confusion.py: mIoU and the per-class lines from a confusion matrix
(rows: the label, columns: the prediction), by hand."""
import os.path as osp
import sys

import pytest
import torch

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'bench'))
from camvid_confusion import miou, table  # noqa: E402

# 11 pixels labelled A: 8 predicted A, 3 B; 5 labelled B: 4 B, 1 A
COUNTS = [[8, 3], [1, 4]]


def test_miou_of_a_confusion_matrix():
    # A: 8 / (8 + 3 + 1) = 66.67; B: 4 / (4 + 1 + 3) = 50.00
    assert miou(torch.tensor(COUNTS)) == pytest.approx((200 / 3 + 50) / 2)


def test_a_class_line_says_recall_overprediction_and_where_the_false_positives_come_from():
    record = dict(run='r', head_type='H', mIoU=58.33, classes=['A', 'B'], confusion=COUNTS)
    lines = table([record], ['B'], top=1).splitlines()
    # B: recall 4 / 5; predicted 3 + 4 = 7 against 5 labelled; 3 of the 7 labelled A
    assert lines[2] == '| r | H | 58.33 | B | 80.0 | 1.40 | A 42.9 |'
    assert len(lines) == 3
