"""SnapSubcentroidsHook: a classifier made of real training pixels, trained end
to end. Hand-worked rules, a real training run on real CamVid files (each
sub-centroid is the embedding of the pixel its provenance names, and stays
there), resume equality, and the cross-rank choice in 2 processes."""
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmseg.registry import MODELS
from mmseg_dnc.checkpoint import load_checkpoint_file
from mmseg_dnc.explain.snap_hook import (META_KEY, SnapSubcentroidsHook, best_across_ranks,
                                        source_paths)
from mmseg_dnc.explain import training_set
from mmseg_dnc.visualization.geometry import unpadded_feature_size
from .conftest import (TINY_CONFIG, TINY_DATA, assert_same_training_state, config_with_hooks,
                       not_blank, run_tool)
from .test_distributed import two_forked_ranks
from .test_subcentroid_learning import head, pixels, step


# --------------------------------------------------------------- the rules
def test_begin_is_a_fraction_or_an_iteration():
    assert SnapSubcentroidsHook(begin=0.75).begin_iter(600) == 450
    assert SnapSubcentroidsHook(begin=7).begin_iter(600) == 7
    once = SnapSubcentroidsHook(begin=4)
    assert [it for it in range(12) if once.snaps_at(it, 12)] == [4]
    again = SnapSubcentroidsHook(begin=4, every=3)
    assert [it for it in range(12) if again.snaps_at(it, 12)] == [4, 7, 10]


@pytest.mark.parametrize('keys, word', [
    (dict(begin=1.5), 'begin'), (dict(begin=1.0), 'begin'), (dict(begin=True), 'begin'),
    (dict(begin=-1), 'begin'), (dict(begin=float('nan')), 'begin'), (dict(every=-1), 'every'),
    (dict(every=2.0), 'every'), (dict(max_images=0), 'max_images')])
def test_bad_settings_are_named(keys, word):
    with pytest.raises(ValueError, match=word):
        SnapSubcentroidsHook(**keys)


def test_evenly_spaced_subset():
    assert SnapSubcentroidsHook(max_images=4).image_indices(10) == [0, 2, 5, 7]
    assert SnapSubcentroidsHook(max_images=20).image_indices(10) == list(range(10))


def test_one_process_keeps_its_own_best():
    score = torch.tensor([[0.5, -float('inf')]])
    payload = dict(source=torch.tensor([[[1, 2, 3], [-1, -1, -1]]]))
    out = best_across_ranks(score, payload)
    assert torch.equal(out['score'], score) and torch.equal(out['source'], payload['source'])


def test_fixed_subcentroids_assign_but_do_not_move():
    model = head(subcentroid_init='kmeans++', momentum=0.5)
    x, y = pixels([6, 6, 6])
    step(model, x, y)  # seeded and moved
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.subcentroids_fixed = True
    assignment = step(model, x, y)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    # the Sinkhorn targets of PPC/PPD are still computed: equipartition over K=4
    for c in range(3):
        assert torch.bincount(assignment[y == c], minlength=4).tolist() != [6, 0, 0, 0]


def test_provenance_loads_with_and_without_the_hook(warnings_logged):
    snapped = head()
    snapped.enable_pixel_sources()
    snapped.subcentroid_source[0, 0] = torch.tensor([3, 10, 20])
    state = snapped.state_dict()
    plain = head()  # no hook: the buffer appears with the checkpoint's values
    assert plain.subcentroid_source is None
    plain.load_state_dict(state)
    assert torch.equal(plain.subcentroid_source, state['subcentroid_source'])
    # a hook's head resuming a checkpoint that was never snapped: no pixel behind it
    hooked = head()
    hooked.enable_pixel_sources()
    hooked.load_state_dict(head().state_dict())
    assert (hooked.subcentroid_source == -1).all()
    said = [r.getMessage() for r in warnings_logged]
    assert any('no subcentroid_source; they are learned, not snapped' in m for m in said), said
    assert not any('count as seeded' in m for m in said)


def test_sources_meta_is_checked():
    assert source_paths({'meta': {}}) is None
    assert source_paths({'meta': {META_KEY: ['a.png']}}) == ['a.png']
    with pytest.raises(ValueError, match=META_KEY):
        source_paths({'meta': {META_KEY: 'a.png'}})


# ------------------------------------------------------ real training run
SNAP_HOOK = "dict(type='SnapSubcentroidsHook', begin=2, num_workers=0)"


def _train(tmp_path, work_dir, iters, *extra):
    """The tiny config with the hook, a checkpoint every iteration."""
    return run_tool('train.py', config_with_hooks(tmp_path, SNAP_HOOK), '--work-dir',
                    str(work_dir), *extra, '--cfg-options', f'train_cfg.max_iters={iters}',
                    'default_hooks.checkpoint.interval=1', *TINY_DATA)


@pytest.fixture(scope='module')
def snapped_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp('snap')
    proc = _train(tmp_path, tmp_path / 'run', 4)
    return tmp_path, proc.stdout + proc.stderr


def _embedding_at(model, dataset, index, y, x):
    """The embedding (D,) of the pixel at (y, x) (original size) of image
    ``index``, by ``model``, through the test pipeline."""
    data = model.data_preprocessor(pseudo_collate([dataset[index]]), False)
    with torch.no_grad():
        out = model.decode_head.classify(model.extract_feat(data['inputs']))
    sample = data['data_samples'][0]
    fh, fw = unpadded_feature_size(sample.img_shape, data['inputs'].shape[2:],
                                   out.embeddings.shape[2:])
    ori_h, ori_w = sample.ori_shape
    fy, fx = y * fh // ori_h, x * fw // ori_w  # (y, x) is the centre of cell (fy, fx)
    # the cell's label, as the training step sees labels (nearest, at the cells)
    label = F.interpolate(sample.gt_sem_seg.data[None].float(), size=(fh, fw), mode='nearest')
    return out.embeddings[0, :, fy, fx], int(label[0, 0, fy, fx])


def test_subcentroids_are_the_real_pixels_they_name(snapped_run):
    tmp_path, log = snapped_run
    assert 'sub-centroids are now real training pixels from' in log
    run = tmp_path / 'run'
    at_snap = load_checkpoint_file(str(run / 'iter_2.pth'))  # the model the pass used
    after = [load_checkpoint_file(str(run / f'iter_{i}.pth')) for i in (3, 4)]
    key = 'decode_head.sub_centroids'
    assert not torch.equal(at_snap['state_dict'][key], after[0]['state_dict'][key])
    # held at the pixels while the network trains on
    assert torch.equal(after[0]['state_dict'][key], after[1]['state_dict'][key])
    assert not torch.equal(at_snap['state_dict']['decode_head.feature_norm.weight'],
                           after[1]['state_dict']['decode_head.feature_norm.weight'])
    paths = source_paths(after[1])
    assert paths and all(osp.isfile(p) for p in paths)

    cfg = Config.fromfile(TINY_CONFIG)
    cfg.train_dataloader.dataset.data_root = TINY_DATA[0].split('=', 1)[1]
    dataset = training_set(cfg)
    index_of = {dataset.get_data_info(i)['img_path']: i for i in range(len(dataset))}
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.load_state_dict(at_snap['state_dict'])
    model.eval()
    source = after[1]['state_dict']['decode_head.subcentroid_source']
    sub_centroids = after[1]['state_dict'][key]
    checked = 0
    for c, k in (source[..., 0] >= 0).nonzero().tolist():
        image, y, x = source[c, k].tolist()
        embedding, label = _embedding_at(model, dataset, index_of[paths[image]], y, x)
        assert label == c, (c, k)
        torch.testing.assert_close(sub_centroids[c, k], embedding, atol=1e-5, rtol=0)
        checked += 1
    assert checked >= 50  # 10 classes of the sample, K=10 (Bicyclist has no pixel)


def test_resume_after_the_snap_continues_exactly(snapped_run, tmp_path):
    first, _ = snapped_run
    work_dir = tmp_path / 'resumed'
    _train(tmp_path, work_dir, 3)
    _train(tmp_path, work_dir, 4, '--resume')
    resumed = load_checkpoint_file(str(work_dir / 'iter_4.pth'))
    straight = load_checkpoint_file(str(first / 'run' / 'iter_4.pth'))
    assert_same_training_state(straight, resumed)
    assert source_paths(resumed) == source_paths(straight)


# ------------------------------------------------------------- 2 processes
def _worker(rank, world_size, port, out_dir):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world_size)
    inf = float('inf')
    # (1, 3): entry 0 rank 1 is nearer, entry 1 a tie (rank 0 wins), entry 2
    # found by rank 0 only
    score = torch.tensor([[0.2, 0.7, 0.9]]) if rank == 0 else torch.tensor([[0.8, 0.7, -inf]])
    source = torch.full((1, 3, 3), 10 * (rank + 1))
    out = best_across_ranks(score, dict(source=source, embedding=score[..., None] * 1.0))
    torch.save(out, osp.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_two_ranks_keep_the_nearest_of_both(tmp_path):
    two_forked_ranks(_worker, tmp_path)
    for rank in range(2):
        out = torch.load(tmp_path / f'rank{rank}.pt')
        torch.testing.assert_close(out['score'], torch.tensor([[0.8, 0.7, 0.9]]))
        assert out['source'][0, :, 0].tolist() == [20, 10, 10]
        torch.testing.assert_close(out['embedding'][0, :, 0], torch.tensor([0.8, 0.7, 0.9]))


def test_explanation_tools_need_no_extra_pass(snapped_run, tmp_path):
    """A checkpoint of real-pixel sub-centroids carries its case base: the
    gallery and the explanation panel run without tools/snap_subcentroids.py."""
    run_dir, _ = snapped_run
    config = config_with_hooks(run_dir, SNAP_HOOK)
    checkpoint = str(run_dir / 'run' / 'iter_4.pth')
    assert not osp.exists(osp.splitext(checkpoint)[0] + '.casebase.pth')
    data_root = TINY_DATA[0].split('=', 1)[1]
    gallery = run_tool('subcentroid_gallery.py', config, checkpoint, '--classes', 'Car',
                       '--out-dir', str(tmp_path / 'gallery'), '--data-root', data_root)
    assert not_blank(tmp_path / 'gallery' / 'Car.png'), gallery.stdout
    image = osp.join(data_root, 'val', '0016E5_07959.png')
    out = tmp_path / 'panel.png'
    run_tool('explain_prediction.py', config, checkpoint, image, '--out', str(out),
             '--data-root', data_root)
    assert not_blank(out)


# ------------------------------------------- provenance is untrusted input
def _crafted(snapped_run, tmp_path, paths=None, row=None):
    """The snapped run's last checkpoint with its provenance altered."""
    checkpoint = load_checkpoint_file(str(snapped_run[0] / 'run' / 'iter_4.pth'))
    if paths is not None:
        checkpoint['meta'][META_KEY] = paths
    if row is not None:
        source = checkpoint['state_dict']['decode_head.subcentroid_source']
        c, k = (source[..., 0] >= 0).nonzero()[0].tolist()
        source[c, k] = torch.tensor(row)
    path = tmp_path / 'crafted.pth'
    torch.save(checkpoint, path)
    return str(path)


def test_tools_refuse_files_outside_the_data_root_and_urls(snapped_run, tmp_path):
    data_root = TINY_DATA[0].split('=', 1)[1]
    config = config_with_hooks(snapped_run[0], SNAP_HOOK)
    outside = tmp_path / 'outside.png'  # a real image, but not the dataset's
    outside.write_bytes(open(osp.join(data_root, 'val', '0016E5_07959.png'), 'rb').read())
    cases = [  # (tool, provenance, what the refusal says)
        ('subcentroid_gallery.py', dict(paths=[str(outside)] * 9), 'outside the data root'),
        ('subcentroid_gallery.py', dict(paths=['../' * 12 + 'etc/hostname'] * 9),
         'outside the data root'),
        ('explain_prediction.py', dict(paths=['http://127.0.0.1:9/x.png'] * 9),
         'URL or other scheme'),
        ('subcentroid_gallery.py', dict(row=[99, 0, 0]), 'subcentroid_source'),
    ]
    image = osp.join(data_root, 'val', '0016E5_07959.png')
    for tool, change, said in cases:
        checkpoint = _crafted(snapped_run, tmp_path, **change)
        out = tmp_path / 'out'
        extra = [image, '--out', str(out / 'panel.png')] if tool == 'explain_prediction.py' \
            else ['--out-dir', str(out)]
        proc = run_tool(tool, config, checkpoint, *extra, '--data-root', data_root, check=False)
        assert proc.returncode != 0 and said in proc.stderr, (tool, change, proc.stderr[-800:])
        assert 'crafted.pth' in proc.stderr
        assert not osp.exists(out / 'panel.png') and not osp.exists(out / 'Car.png')


def test_resume_refuses_a_checkpoint_whose_provenance_is_a_url(snapped_run, tmp_path):
    work_dir = tmp_path / 'resume'
    work_dir.mkdir()
    checkpoint = _crafted(snapped_run, tmp_path, paths=['https://example.com/a.png'] * 9)
    (work_dir / 'last_checkpoint').write_text(checkpoint)
    proc = run_tool('train.py', config_with_hooks(tmp_path, SNAP_HOOK), '--work-dir',
                    str(work_dir), '--resume', '--cfg-options', 'train_cfg.max_iters=6',
                    *TINY_DATA, check=False)
    assert proc.returncode != 0 and 'URL or other scheme' in proc.stderr, proc.stderr[-800:]
    assert not osp.exists(work_dir / 'iter_5.pth')  # nothing carried into a new checkpoint
