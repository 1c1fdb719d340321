"""Case-based explanations: the case base really holds the nearest pixels, the
replaced sub-centroids are real unit embeddings, the pictures are written."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmseg.registry import DATASETS
from mmseg_dnc.explain import build_case_base, diversity, one_by_one
from .conftest import CAMVID, ROOT, build_model, run_tool
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
    """Every labelled feature pixel of every image: (score (P, C*K), class, image, y, x)."""
    head = model.decode_head
    rows = []
    for index in range(len(dataset)):
        data = dataset[index]
        batch = model.data_preprocessor(dict(inputs=[data['inputs']],
                                             data_samples=[data['data_samples']]), False)
        with torch.no_grad():
            emb, scores, _ = head.classify(model.extract_feat(batch['inputs']))
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
                    rows.append((scores[:, fy, fx], int(small[fy, fx]), index, fy, fx))
    return rows


def test_case_base_holds_the_nearest_pixels_of_each_class(model_and_case_base, small_set):
    model, case_base = model_and_case_base
    rows = brute_force(model, small_set)
    k = 10
    for c in {r[1] for r in rows}:
        own = [r for r in rows if r[1] == c]
        for j in range(k):
            expected = sorted((float(r[0][c * k + j]) for r in own), reverse=True)[:4]
            got = case_base['score'][:len(expected), c, j].tolist()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # every class without pixels has none recorded
    absent = set(range(11)) - {r[1] for r in rows}
    for c in absent:
        assert (case_base['image'][:, c] == -1).all()
    # wins: every labelled pixel counted once, for its own class
    assert int(case_base['wins'].sum()) == len(rows)
    for c in range(11):
        assert int(case_base['wins'][c].sum()) == sum(r[1] == c for r in rows)
    # positions lie in the original 480x360 image
    found = case_base['image'] >= 0
    assert (case_base['y'][found] < 360).all() and (case_base['x'][found] < 480).all()


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
    from mmseg_dnc.checkpoint import load_checkpoint_file
    case_base = load_checkpoint_file(str(tmp_path / 'model.casebase.pth'))
    assert case_base['score'].shape == (3, 11, 10) and len(case_base['image_paths']) == 6
    replaced = load_checkpoint_file(str(tmp_path / 'model_casebased.pth'))['state_dict'][
        'decode_head.sub_centroids']
    torch.testing.assert_close(replaced.norm(dim=-1), torch.ones(11, 10))
    has = case_base['has_pixels']
    torch.testing.assert_close(replaced[has], case_base['nearest_embedding'][has])

    image = osp.join(CAMVID, 'val', '0016E5_07959.png')
    panel = tmp_path / 'panel.png'
    run_tool('explain_prediction.py', CONFIG, ckpt, image, '--out', str(panel), '--points',
             '300,100', '50,400')
    picture = np.asarray(Image.open(panel).convert('L'))
    assert picture.shape[0] > 500 and picture.std() > 10

    run_tool('subcentroid_gallery.py', CONFIG, ckpt, '--classes', 'Road', 'Sky', '--out-dir',
             str(tmp_path / 'gallery'))
    for name in ('Road.png', 'Sky.png', 'similarity.png'):
        assert np.asarray(Image.open(tmp_path / 'gallery' / name).convert('L')).std() > 10


def test_explain_without_case_base_says_how_to_make_it(trained, tmp_path):
    work_dir, _ = trained
    proc = run_tool('explain_prediction.py', CONFIG, osp.join(work_dir, 'iter_4.pth'),
                    osp.join(CAMVID, 'val', '0016E5_07959.png'), '--case-base',
                    str(tmp_path / 'none.pth'), check=False)
    assert proc.returncode != 0 and 'tools/snap_subcentroids.py' in proc.stderr


def test_diversity_table_says_which_classes_are_not_seeded():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'snap_subcentroids', osp.join(ROOT, 'tools', 'snap_subcentroids.py'))
    snap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snap)
    sub = torch.nn.functional.normalize(torch.randn(2, 3, 4), dim=-1)
    case_base = dict(wins=torch.tensor([[5, 5, 0], [0, 0, 0]]), classes=['Road', 'Bicyclist'])
    table, _ = snap.diversity_table(case_base, sub, torch.tensor([True, False]))
    road, bicyclist = table.splitlines()[2:]
    assert road.startswith('| Road |') and '| 2.0 | 50 50 0 |' in road
    assert bicyclist.startswith('| Bicyclist | - | - | not seeded')
