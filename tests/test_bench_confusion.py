"""bench/camvid_confusion.py: mIoU and the per-class lines from a confusion matrix
(rows: the label, columns: the prediction), by hand; and
bench/camvid_subcentroid_errors.py's logits with one sub-centroid left out."""
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
    record = dict(run='r', head_type='H', mIoU=58.33, classes=['A', 'B'], confusion=COUNTS,
                  false_positives_near=[1, 2], false_positives_far=[0, 1])
    lines = table([record], ['B'], top=1).splitlines()
    # B: recall 4 / 5; predicted 3 + 4 = 7 against 5 labelled; 3 of the 7 labelled A,
    # 2 of those 3 near a pixel labelled B
    assert lines[2] == '| r | H | 58.33 | B | 80.0 | 1.40 | A 42.9 | 66.7 |'
    assert len(lines) == 3


def test_false_positives_near_their_class_are_counted_apart(monkeypatch):
    import camvid_confusion
    # one 1x12 image: B labelled at x=0, x=11 ignored (255); B predicted at x=0 (right),
    # x=4 (wrong, 4 px from it: near), x=5 (wrong, 5 px: far) and x=11 (ignored: no count)
    label = torch.zeros(1, 12, dtype=torch.long)
    label[0, 0], label[0, 11] = 1, 255
    logits = torch.zeros(1, 2, 1, 12)
    logits[0, 1, 0, [0, 4, 5, 11]] = 1.0

    class Head:
        num_classes = 2

    class Model:
        decode_head = Head()
        dataset_meta = dict(classes=['A', 'B'])
    monkeypatch.setattr(camvid_confusion, 'load_run', lambda *a: (None, Model(), 'iter_1.pth'))
    monkeypatch.setattr(camvid_confusion, 'camvid_split', lambda *a: None)
    monkeypatch.setattr(camvid_confusion, 'features_and_logits',
                        lambda *a: iter([(None, logits, label)]))
    record = camvid_confusion.confusion('runs/x', 'data', near=4)
    assert record['confusion'] == [[8, 2], [0, 1]]
    assert record['false_positives_near'] == [0, 1]
    assert record['false_positives_far'] == [0, 1]


def test_a_sub_centroid_left_out_of_the_max_over_k():
    from camvid_subcentroid_errors import logits_without

    from mmseg_dnc.models.dnc_head import DNCDecodeHead

    class Head:  # 2 classes, K=2, every slot used, the class-score LayerNorm at its start
        num_classes = 2
        sub_centroids = torch.zeros(2, 2, 3)
        slot_mask = None
        score_norm = torch.nn.LayerNorm(2)
        logits_from_scores = DNCDecodeHead.logits_from_scores  # the head's own
    # class 0's sub-centroids score 0.9 and 0.1, class 1's 0.2 and 0.5
    sub_scores = torch.tensor([0.9, 0.1, 0.2, 0.5]).view(1, 4, 1, 1)
    # max over K: (0.9, 0.5); a LayerNorm over two values gives -1 and +1 (to its eps)
    both = logits_without(Head(), sub_scores, 0, None).flatten()
    assert both.tolist() == pytest.approx([1.0, -1.0], abs=1e-3)
    # class 0 without its sub-centroid 0 scores 0.1 < 0.5: the decision flips
    without = logits_without(Head(), sub_scores, 0, 0).flatten()
    assert without.tolist() == pytest.approx([-1.0, 1.0], abs=1e-3)
    # leaving out class 1's weaker sub-centroid changes nothing
    assert logits_without(Head(), sub_scores, 1, 0).flatten().tolist() == \
        pytest.approx(both.tolist())
    # scores divided by a temperature instead of the LayerNorm
    Head.score_norm, Head.score_temperature = None, 0.1
    assert logits_without(Head(), sub_scores, 0, 0).flatten().tolist() == \
        pytest.approx([1.0, 5.0])
