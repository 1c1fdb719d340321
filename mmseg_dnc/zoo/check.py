"""One training step and one ``predict`` of every mmseg decode head with DNC,
on real CamVid crops: the compatibility table of README.

Each head ends in one of four states: ``trains`` (losses finite, the
sub-centroids moved by the step and not by ``predict``), ``refused`` (at
build, with the reason), ``needs full mmcv`` (its decoder uses compiled
``mmcv.ops``, absent from mmcv-lite), or ``fails`` (anything else: a bug).
"""
import glob
import os.path as osp
import time
from typing import List, NamedTuple, Optional, Sequence

import mmcv
import numpy as np
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import PixelData

from mmseg.datasets.transforms import GenerateEdge
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg_dnc_mmcv_lite import LITE_MESSAGE
from ..models.build_checks import resolve_decoder
from ..models.dnc_head import DNCDecodeHead
from .models import ZOO, head_at, tiny_dnc_model_cfg

TRAINS, REFUSED, NEEDS_MMCV, FAILS = 'trains', 'refused', 'needs full mmcv', 'fails'
# what the mmcv-lite stand-in's errors say (mmseg_dnc_mmcv_lite)
_LITE_MARK = LITE_MESSAGE.split('{name}')[1].split('.')[0]
_CAMVID_UNLABELLED = 11


class ZooResult(NamedTuple):
    head: str
    config: str
    status: str
    detail: str  # the refusal's reason, the missing op, the failure, or the note
    seconds: float


def camvid_batch(root: str, size: int = 64, num_images: int = 2) -> dict:
    """A data batch of ``num_images`` real CamVid crops, ``size`` square, from
    the middle of the first images of ``root/train`` (a crop larger than the
    image is the largest square, resized), as mmseg's dataloader gives it:
    uint8 BGR images, labels with Unlabelled at 255, and the edge maps that
    PIDNet's pipeline adds."""
    images = sorted(glob.glob(osp.join(root, 'train', '*.png')))[:num_images]
    if len(images) < num_images:
        raise FileNotFoundError(f'{num_images} CamVid images needed in {root}/train, '
                                f'found {len(images)}.')
    inputs, samples = [], []
    for path in images:
        img = mmcv.imread(path)
        label = mmcv.imread(osp.join(root, 'trainannot', osp.basename(path)), 'unchanged')
        side = min(size, *img.shape[:2])
        y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        img, label = img[y:y + side, x:x + side], label[y:y + side, x:x + side].copy()
        if side < size:
            img = mmcv.imresize(img, (size, size))
            label = mmcv.imresize(label, (size, size), interpolation='nearest')
        label[label == _CAMVID_UNLABELLED] = 255
        edge = GenerateEdge(edge_width=4)(dict(gt_seg_map=label, img_shape=(size, size)))[
            'gt_edge_map']
        inputs.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        sample = SegDataSample(
            gt_sem_seg=PixelData(data=torch.from_numpy(label.astype(np.int64))[None]),
            gt_edge_map=PixelData(data=torch.from_numpy(edge.astype(np.int64))[None]))
        sample.set_metainfo(dict(img_path=path, img_shape=(size, size),
                                 ori_shape=(size, size), pad_shape=(size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _train_and_predict(head_type: str, batch: dict) -> Optional[str]:
    """None when DNC on ``head_type`` trains and predicts; else what went wrong."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_dnc_model_cfg(head_type))
    model.init_weights()
    head = head_at(model, ZOO[head_type].where)
    if not isinstance(head, DNCDecodeHead):
        return f'the {ZOO[head_type].where} built is a {type(head).__name__}'
    before = head.sub_centroids.clone()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(batch, optim)
    bad = [k for k, v in log.items() if not torch.isfinite(v).all()]
    if bad:
        return f'non-finite {bad}'
    if not any(k.endswith('loss_ppc') for k in log):
        return f'no loss_ppc among {sorted(log)}'
    moved = head.sub_centroids.clone()
    if torch.equal(before, moved):
        return 'the training step did not move the sub-centroids'
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch)
    size = tuple(batch['inputs'][0].shape[1:])
    if out[0].pred_sem_seg.data.shape != (1, *size):
        return f'predict gave {tuple(out[0].pred_sem_seg.data.shape)}'
    if not torch.equal(moved, head.sub_centroids):
        return 'predict moved the sub-centroids'
    return None


def check_head(head_type: str, camvid_root: str) -> ZooResult:
    """Build ``head_type``'s mmseg model with DNC, train one step, predict."""
    entry, start = ZOO[head_type], time.perf_counter()

    def result(status, detail):
        return ZooResult(head_type, entry.config, status, detail,
                         time.perf_counter() - start)

    try:  # the check DNCDecodeHead runs when it is built
        resolve_decoder(head_type)
    except TypeError as error:
        return result(REFUSED, str(error).split('): ', 1)[1].split('. DNCDecodeHead ')[0])
    threads = torch.get_num_threads()
    # one thread: on these tiny models, more threads only wait on each other
    torch.set_num_threads(1)
    try:
        failure = _train_and_predict(head_type, camvid_batch(
            camvid_root, entry.image_size, entry.batch_size))
    except Exception as error:  # noqa: BLE001  (every error is a row of the table)
        if _LITE_MARK in str(error):
            return result(NEEDS_MMCV, str(error).split(' needs ')[0])
        return result(FAILS, f'{type(error).__name__}: {error}')
    finally:
        torch.set_num_threads(threads)
    return result(FAILS, failure) if failure else result(TRAINS, entry.note)


def check_zoo(camvid_root: str, heads: Optional[Sequence[str]] = None) -> List[ZooResult]:
    """:func:`check_head` for ``heads`` (default: all of :data:`ZOO`)."""
    return [check_head(head, camvid_root) for head in (heads or sorted(ZOO))]


def format_table(results: Sequence[ZooResult]) -> str:
    """A Markdown table: head, mmseg config, result, reason or note."""
    lines = ['| decode head | mmseg config (shrunk) | DNC | why / note |',
             '|---|---|---|---|']
    for r in results:
        lines.append(f'| `{r.head}` | `{r.config}` | {r.status} | {r.detail} |')
    return '\n'.join(lines)
