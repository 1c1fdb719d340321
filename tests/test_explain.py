"""Case-based explanations: the case base really holds the nearest pixels (one
per image, new sequences first, border cells flagged), the replaced
sub-centroids are real unit embeddings, the pictures are written."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmseg.registry import DATASETS
from mmseg_dnc.explain import build_case_base, diversity, one_by_one
from mmseg_dnc.explain.evidence import (border_flags, distinct_evidence, on_border,
                                        sequence_key)
from mmseg_dnc.explain.figures import class_gallery, gallery_row_labels, similarity_heatmap
from mmseg_dnc.tools.snap_subcentroids import diversity_table
from .conftest import CAMVID, build_model, not_blank, run_tool
from .conftest import TINY_CONFIG as CONFIG


@pytest.fixture(scope='module')
def small_set():
    return DATASETS.build(dict(
        type='CamVidDataset', data_root=CAMVID, indices=5,
        data_prefix=dict(img_path='train', seg_map_path='trainannot'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='Resize', scale=(120, 90), keep_ratio=True),
                  dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))


@pytest.fixture(scope='module')
def model_and_case_base(small_set):
    model = build_model('FCNHead', 11)
    model.dataset_meta = small_set.metainfo
    return model, build_case_base(model, one_by_one(small_set, 0), top_n=4, progress=False)


def brute_force(model, dataset):
    """Every labelled feature pixel of every image: (score (C*K,), class, image,
    fy, fx, on the border of the image's feature area)."""
    head = model.decode_head
    rows = []
    for index in range(len(dataset)):
        data = dataset[index]
        batch = model.data_preprocessor(dict(inputs=[data['inputs']],
                                             data_samples=[data['data_samples']]), False)
        with torch.no_grad():
            out = head.classify(model.extract_feat(batch['inputs']))
            emb, scores = out.embeddings, out.sub_scores
            scores = scores[0]
        h, w = data['data_samples'].img_shape
        # the feature cells covering the image, per axis (the input may be unpadded)
        fh = round(h * emb.shape[-2] / batch['inputs'].shape[-2])
        fw = round(w * emb.shape[-1] / batch['inputs'].shape[-1])
        label = data['data_samples'].gt_sem_seg.data.float()[None]
        small = F.interpolate(label, size=(fh, fw), mode='nearest').long()[0, 0]
        for fy in range(fh):
            for fx in range(fw):
                if small[fy, fx] < 11:
                    border = fy in (0, fh - 1) or fx in (0, fw - 1)
                    rows.append((scores[:, fy, fx], int(small[fy, fx]), index, fy, fx, border))
    return rows


def test_case_base_shows_distinct_images_and_sequences(model_and_case_base, small_set):
    """Per sub-centroid: each image's best pixel; the best image of every
    sequence (3 sequences among the 5 frames, T=4), then the best other image."""
    model, case_base = model_and_case_base
    rows = brute_force(model, small_set)
    sequence = [sequence_key(small_set[i]['data_samples'].img_path) for i in range(5)]
    assert len(set(sequence)) == 3
    k = 10
    flagged_somewhere = False
    for c in {r[1] for r in rows}:
        own = [r for r in rows if r[1] == c]
        for j in range(k):
            per_image = {}  # image -> (score, border) of its best pixel
            for r in own:
                score = float(r[0][c * k + j])
                if r[2] not in per_image or score > per_image[r[2]][0]:
                    per_image[r[2]] = (score, r[5])
            by_sequence = {}
            for i, (score, _) in per_image.items():
                if score > per_image.get(by_sequence.get(sequence[i]), (-2,))[0]:
                    by_sequence[sequence[i]] = i
            rest = sorted(set(per_image) - set(by_sequence.values()),
                          key=lambda i: -per_image[i][0])
            expected = sorted(list(by_sequence.values()) + rest[:4 - len(by_sequence)],
                              key=lambda i: -per_image[i][0])
            n = len(expected)
            got = case_base['image'][:, c, j].tolist()
            assert got[:n] == expected and got[n:] == [-1] * (4 - n)
            np.testing.assert_allclose(case_base['score'][:n, c, j].tolist(),
                                       [per_image[i][0] for i in expected], rtol=1e-5, atol=1e-6)
            # the first is the single nearest pixel of the whole set
            assert float(case_base['score'][0, c, j]) == pytest.approx(
                max(float(r[0][c * k + j]) for r in own), abs=1e-6)
            border = [per_image[i][1] for i in expected]
            assert case_base['border'][:, c, j].tolist() == border + [False] * (4 - n)
            assert bool(case_base['border_flagged'][c, j]) == (2 * sum(border) >= n)
            flagged_somewhere |= bool(case_base['border_flagged'][c, j])
    assert flagged_somewhere  # the gallery test below shows a real flag
    # every class without pixels has none recorded
    absent = set(range(11)) - {r[1] for r in rows}
    for c in absent:
        assert (case_base['image'][:, c] == -1).all()
        assert not case_base['border_flagged'][c].any()
    # wins: every labelled pixel counted once, for its own class
    assert int(case_base['wins'].sum()) == len(rows)
    for c in range(11):
        assert int(case_base['wins'][c].sum()) == sum(r[1] == c for r in rows)
    # positions lie in the original 480x360 image
    found = case_base['image'] >= 0
    assert (case_base['y'][found] < 360).all() and (case_base['x'][found] < 480).all()


def test_top_1_is_the_single_nearest_pixel(model_and_case_base, small_set):
    model, case_base = model_and_case_base
    one = build_case_base(model, one_by_one(small_set, 0), top_n=1, progress=False)
    assert one['score'].shape == (1, 11, 10)
    for key in ('score', 'image', 'y', 'x', 'border'):
        torch.testing.assert_close(one[key], case_base[key][:1])
    for key in ('nearest_embedding', 'has_pixels', 'wins'):
        torch.testing.assert_close(one[key], case_base[key])


def test_distinct_evidence_by_hand():
    inf = float('-inf')
    # columns: 0 the top 3 are one sequence; 1 one sequence only; 2 fewer
    # candidates than T; 3 two sequences for three places; 4 one image twice
    score = torch.tensor([[.9, .5, .3, .9, .9],
                          [.8, .9, inf, .8, .8],
                          [.7, .7, inf, .7, .7],
                          [.6, inf, inf, .6, inf],
                          [.5, .8, .4, inf, inf]])
    image = torch.tensor([[0, 0, 0, 0, 5],
                          [1, 1, 1, 1, 5],
                          [2, 2, 2, 2, 6],
                          [3, 3, 3, 3, 7],
                          [4, 4, 4, 4, 8]])
    sequence = torch.tensor([[0, 0, 0, 0, 0],
                             [0, 0, 0, 0, 0],
                             [0, 0, 0, 1, 0],
                             [1, 0, 0, 1, 0],
                             [2, 0, 0, 0, 0]])
    rows = distinct_evidence(score, image, sequence, top_n=3)
    assert rows.t().tolist() == [[0, 3, 4],    # not 0, 1, 2: sequence 0 thrice
                                 [1, 4, 2],    # one sequence: the best 3 images
                                 [4, 0, -1],   # padded, as the case base pads
                                 [0, 1, 2],    # 0 and 2 (new sequences), then 1
                                 [0, 2, -1]]   # image 5 once
    assert distinct_evidence(score, image, sequence, top_n=1).tolist() == [[0, 1, 4, 0, 0]]


def test_sequence_keys():
    assert [sequence_key(p) for p in ('a/0001TP_006690.png', 'Seq05VD_f00030.png',
                                      '0016E5_07959.png', 'ADE_train_00000001.jpg',
                                      'plain.png')] == [
        '0001TP', 'Seq05VD', '0016E5', 'ADE_train', 'plain']


def test_border_rule_by_hand():
    fy, fx = torch.tensor([0, 1, 2, 1, 1]), torch.tensor([1, 0, 1, 3, 2])
    assert on_border(fy, fx, 3, 4).tolist() == [True, True, True, True, False]
    # (T=4, C=1, K=4): 2 of 4 on the edge; 1 of 4; 1 of 1; none found (a stray
    # True in the padding does not count)
    border = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]).bool()
    found = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]).bool()
    assert border_flags(border[:, None], found[:, None]).tolist() == [[True, False, True, False]]


def test_gallery_marks_border_sub_centroids(model_and_case_base, tmp_path):
    _, case_base = model_and_case_base
    share = diversity(torch.nn.functional.normalize(torch.randn(11, 10, 4), dim=-1),
                      case_base['wins'])['share']
    flagged = case_base['border_flagged']
    c = int(flagged.any(dim=1).nonzero()[0, 0])
    labels = gallery_row_labels(case_base, c, share)
    assert ['border' in label for label in labels] == flagged[c].tolist()
    assert labels[0].startswith('k=0\nwins ')
    path = class_gallery(case_base, c, share, str(tmp_path / 'gallery.png'))
    assert not_blank(path)
    # a case base saved before border flags: no marks, and the picture says so
    old = {key: value for key, value in case_base.items()
           if key not in ('border', 'border_flagged')}
    assert not any('border' in label for label in gallery_row_labels(old, c, share))
    path = class_gallery(old, c, share, str(tmp_path / 'old.png'))
    assert not_blank(path)


def test_nearest_embedding_is_a_real_unit_pixel(model_and_case_base):
    model, case_base = model_and_case_base
    has = case_base['has_pixels']
    emb = case_base['nearest_embedding'][has]
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(emb)))
    # its cosine to the sub-centroid is the top score of the case base
    cos = (emb * model.decode_head.sub_centroids[has]).sum(-1)
    torch.testing.assert_close(cos, case_base['score'][0][has], rtol=1e-5, atol=1e-5)


def test_diversity_numbers():
    identical = F.normalize(torch.ones(1, 3, 3), dim=-1)  # class 0: collapsed
    orthogonal = torch.eye(3)[None, :, :]  # class 1: as diverse as can be
    stats = diversity(torch.cat([identical, orthogonal]),
                      torch.tensor([[9, 0, 0], [3, 3, 3]]))
    torch.testing.assert_close(stats['mean_pairwise_cosine'], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(stats['share'][1], torch.full((3,), 1 / 3))
    torch.testing.assert_close(stats['effective_k'], torch.tensor([1.0, 3.0]))


def test_diversity_with_k_per_class_ignores_unused_slots():
    # class 0 uses 2 of 3 slots (orthogonal pair); its unused slot equals slot 0
    # and "won" pixels, and must change nothing; class 1 uses 1 slot
    p = torch.stack([torch.eye(3)[[0, 1, 0]], torch.eye(3)[[2, 0, 1]]])
    active = torch.tensor([[True, True, False], [True, False, False]])
    stats = diversity(p, torch.tensor([[1, 3, 8], [5, 9, 9]]), active)
    torch.testing.assert_close(stats['mean_pairwise_cosine'], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(stats['share'], torch.tensor([[0.25, 0.75, 0.0],
                                                             [1.0, 0.0, 0.0]]))
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(stats['effective_k'], torch.tensor([math.exp(entropy), 1.0]))


def test_case_base_of_a_k_per_class_head_records_its_slots(small_set):
    ks = [3, 10, 2, 10, 5, 7, 2, 2, 4, 2, 1]
    model = build_model('FCNHead', 11, num_subcentroids=ks)
    model.dataset_meta = small_set.metainfo
    case_base = build_case_base(model, one_by_one(small_set, 0), top_n=2, progress=False)
    assert case_base['active'].sum(dim=1).tolist() == ks
    # an unused slot is never anyone's nearest, so it has no pixel and no win
    assert not case_base['has_pixels'][~case_base['active']].any()
    assert case_base['wins'][~case_base['active']].sum() == 0


def test_gallery_and_heatmap_with_k_per_class(model_and_case_base, tmp_path):
    _, case_base = model_and_case_base
    active = torch.zeros(11, 10, dtype=torch.bool)
    active[:, :4] = True
    active[0, 4:7] = True  # class 0: K=7, the others K=4
    limited = dict(case_base, active=active)
    share = diversity(F.normalize(torch.randn(11, 10, 4), dim=-1), case_base['wins'],
                      active)['share']
    assert [label.split('\n')[0] for label in gallery_row_labels(limited, 0, share)] == \
        [f'k={k}' for k in range(7)]
    assert len(gallery_row_labels(limited, 1, share)) == 4
    path = class_gallery(limited, 1, share, str(tmp_path / 'gallery.png'))
    assert not_blank(path)
    path = similarity_heatmap(F.normalize(torch.randn(11, 10, 4), dim=-1), case_base['classes'],
                              str(tmp_path / 'similarity.png'), active)
    assert not_blank(path)


def test_tools_write_case_base_panel_and_gallery(trained, tmp_path):
    work_dir, _ = trained
    ckpt = str(tmp_path / 'model.pth')
    with open(osp.join(work_dir, 'iter_4.pth'), 'rb') as src, open(ckpt, 'wb') as dst:
        dst.write(src.read())
    snap = run_tool('snap_subcentroids.py', CONFIG, ckpt, '--data-root', CAMVID, '--top-n', '3',
                    '--replace', '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                    'train_dataloader.dataset.indices=6', 'test_dataloader.dataset.indices=3')
    out = snap.stdout + snap.stderr
    assert '| Road |' in out and 'mIoU: learned sub-centroids' in out
    assert '| border k |' in out and '\nborder k: ' in out
    from mmseg_dnc.checkpoint import load_checkpoint_file
    case_base = load_checkpoint_file(str(tmp_path / 'model.casebase.pth'))
    assert case_base['score'].shape == (3, 11, 10) and len(case_base['image_paths']) == 6
    assert case_base['border'].shape == (3, 11, 10)
    assert case_base['border_flagged'].shape == (11, 10)
    replaced = load_checkpoint_file(str(tmp_path / 'model_casebased.pth'))['state_dict'][
        'decode_head.sub_centroids']
    torch.testing.assert_close(replaced.norm(dim=-1), torch.ones(11, 10))
    has = case_base['has_pixels']
    torch.testing.assert_close(replaced[has], case_base['nearest_embedding'][has])
    # its provenance names the pixels it now is, and no others
    rewritten = load_checkpoint_file(str(tmp_path / 'model_casebased.pth'))
    source = rewritten['state_dict']['decode_head.subcentroid_source']
    paths = rewritten['meta']['dnc_pixel_sources']
    for c, k in has.nonzero().tolist():
        image, y, x = source[c, k].tolist()
        assert paths[image] == case_base['image_paths'][int(case_base['image'][0, c, k])]
        assert (y, x) == (int(case_base['y'][0, c, k]), int(case_base['x'][0, c, k]))
    assert bool((source[~has] == -1).all()) and len(paths) <= 6

    image = osp.join(CAMVID, 'val', '0016E5_07959.png')
    panel = tmp_path / 'panel.png'
    run_tool('explain_prediction.py', CONFIG, ckpt, image, '--out', str(panel), '--points',
             '300,100', '50,400', '--data-root', CAMVID)
    picture = np.asarray(Image.open(panel).convert('L'))
    assert picture.shape[0] > 500 and picture.std() > 10

    run_tool('subcentroid_gallery.py', CONFIG, ckpt, '--classes', 'Road', 'Sky', '--out-dir',
             str(tmp_path / 'gallery'), '--data-root', CAMVID)
    for name in ('Road.png', 'Sky.png', 'similarity.png'):
        assert not_blank(tmp_path / 'gallery' / name)

    # a case base saved before border flags still makes a gallery, which says so
    old = {key: value for key, value in case_base.items()
           if key not in ('border', 'border_flagged')}
    torch.save(old, tmp_path / 'old.casebase.pth')
    proc = run_tool('subcentroid_gallery.py', CONFIG, ckpt, '--classes', 'Road', '--out-dir',
                    str(tmp_path / 'old_gallery'), '--case-base',
                    str(tmp_path / 'old.casebase.pth'), '--data-root', CAMVID)
    assert 'border: not known' in proc.stdout
    assert osp.isfile(tmp_path / 'old_gallery' / 'Road.png')
    proc = run_tool('explain_prediction.py', CONFIG, ckpt, image, '--out',
                    str(tmp_path / 'old_panel.png'), '--case-base',
                    str(tmp_path / 'old.casebase.pth'), '--data-root', CAMVID)
    assert 'border: not known' in proc.stdout and osp.isfile(tmp_path / 'old_panel.png')


def test_explain_without_case_base_says_how_to_make_it(trained, tmp_path):
    work_dir, _ = trained
    proc = run_tool('explain_prediction.py', CONFIG, osp.join(work_dir, 'iter_4.pth'),
                    osp.join(CAMVID, 'val', '0016E5_07959.png'), '--case-base',
                    str(tmp_path / 'none.pth'), check=False)
    assert proc.returncode != 0 and 'tools/snap_subcentroids.py' in proc.stderr


def test_diversity_table_says_which_classes_are_not_seeded():
    sub = torch.nn.functional.normalize(torch.randn(2, 3, 4), dim=-1)
    case_base = dict(wins=torch.tensor([[5, 5, 0], [0, 0, 0]]), classes=['Road', 'Bicyclist'])
    table, _ = diversity_table(case_base, sub, torch.tensor([True, False]))
    road, bicyclist, _, legend = table.splitlines()[2:]
    assert road.startswith('| Road |') and '| 2.0 | 50 50 0 | ? |' in road
    assert bicyclist.startswith('| Bicyclist | - | - | not seeded')
    assert legend.startswith('border k:') and "'?': not known" in legend
    # with border flags (a case base made now): the flagged k are listed
    case_base['border_flagged'] = torch.tensor([[True, False, True], [False] * 3])
    road, bicyclist = diversity_table(case_base, sub)[0].splitlines()[2:4]
    assert road.endswith('| 50 50 0 | 0 2 |') and bicyclist.endswith('| - |')
