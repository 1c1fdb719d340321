"""bench/camvid_pretrained.py: which records are the same run, and which pair.

A record names the recipe it ran at (the backbone's ``lr_mult``, the train
scale); records written before records named them ran at the configs' values
then: 0.1, and random scale 0.5-2.0.
"""
import os.path as osp
import sys

import pytest
from mmengine.config import Config

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'bench'))
from camvid_pretrained import (configured_train_scale, paired, per_class_table,  # noqa: E402
                               same_run, table, train_scale)


def record(variant, seed, miou, **extra):
    config = 'configs/{}/segformer_efficientnet-lite0_camvid.py'.format(
        'parametric' if variant == 'twin' else 'dnc')
    return dict(variant=variant, config=config, head={}, seed=seed, schedule='S', split='val',
                metrics={'mIoU': miou, 'train_min': 13.0,
                         **{f'IoU.{c}': 10.0 for c in
                            ('Pole', 'SignSymbol', 'Pedestrian', 'Bicyclist')}},
                **extra)


def test_a_record_without_the_recipe_ran_at_the_first_configs_rate():
    old = record('twin', 0, 58.0)
    assert same_run(old, record('twin', 0, 0.0, backbone_lr_mult=0.1))
    assert not same_run(old, record('twin', 0, 0.0, backbone_lr_mult=1.0))
    assert not same_run(record('twin', 0, 0.0, backbone_lr_mult=1.0),
                        record('twin', 1, 0.0, backbone_lr_mult=1.0))


def test_runs_pair_with_the_twin_of_their_own_recipe_and_seed():
    records = [record('twin', 0, 58.0), record('dnc', 0, 55.5),
               record('twin', 0, 61.0, backbone_lr_mult=1.0),
               record('dnc', 0, 60.0, backbone_lr_mult=1.0),
               record('dnc', 1, 57.0, backbone_lr_mult=1.0)]  # no twin at seed 1
    gaps = paired(records)
    assert gaps.keys() == {('S', 'val', 0.1, '0.5-2', 'dnc'), ('S', 'val', 1.0, '0.5-2', 'dnc')}
    assert gaps[('S', 'val', 0.1, '0.5-2', 'dnc')] == {0: pytest.approx(-2.5)}
    assert gaps[('S', 'val', 1.0, '0.5-2', 'dnc')] == {0: pytest.approx(-1.0)}
    rows = table(records).splitlines()[2:]
    assert len(rows) == 4  # twin and DNC at each rate
    assert [r.split(' | ')[2] for r in rows] == ['0.1', '0.1', '1', '1']
    # the DNC row at 1.0 holds seeds 0 and 1; only seed 0 has a twin to pair with
    assert rows[3].split(' | ')[3:8] == ['0.5-2', 'dnc', '0 1', '58.5 ± 2.1', '-1.00 (-1.0)']


def test_a_recipe_change_pairs_with_the_twin_run_at_the_same_options():
    faster = {'optim_wrapper.paramwise_cfg.custom_keys.score_norm': {'lr_mult': 10.0},
              'optim_wrapper.paramwise_cfg.custom_keys.conv_seg': {'lr_mult': 10.0}}
    twin_faster = {'optim_wrapper.paramwise_cfg.custom_keys.conv_seg': {'lr_mult': 10.0}}
    records = [record('twin', 0, 61.0, backbone_lr_mult=1.0),
               record('dnc', 0, 60.0, backbone_lr_mult=1.0),
               record('twin', 0, 62.0, backbone_lr_mult=1.0, options=twin_faster),
               record('dnc 10x', 0, 61.5, backbone_lr_mult=1.0, options=faster)]
    # a twin run with other options is another recipe: no pair
    assert paired(records) == {('S', 'val', 1.0, '0.5-2', 'dnc'): {0: pytest.approx(-1.0)}}
    records[2]['options'] = faster
    assert paired(records)[('S', 'val', 1.0, '0.5-2', 'dnc 10x')] == {0: pytest.approx(-0.5)}
    # options are part of what makes a run the same run
    assert not same_run(records[0], records[2])
    assert same_run(records[0], dict(records[0], options={}))


def test_the_train_scale_is_part_of_the_recipe():
    scale = 'train_dataloader.dataset.pipeline.2.ratio_range'
    old = record('dnc', 0, 57.9, backbone_lr_mult=1.0)  # before records named it: 0.5-2.0
    as_option = record('dnc', 0, 61.4, backbone_lr_mult=1.0, options={scale: [0.75, 1.5]})
    configured = record('dnc', 0, 0.0, backbone_lr_mult=1.0, train_scale=[0.75, 1.5])
    assert train_scale(old) == (0.5, 2.0) and train_scale(as_option) == (0.75, 1.5)
    # the configs' range, named by the record, is the same run as the option asking for it
    assert same_run(as_option, configured) and not same_run(old, configured)
    assert same_run(old, record('dnc', 0, 0.0, backbone_lr_mult=1.0, train_scale=[0.5, 2]))
    records = [old, record('twin', 0, 61.1, backbone_lr_mult=1.0), as_option,
               record('twin', 0, 62.2, backbone_lr_mult=1.0, train_scale=[0.75, 1.5])]
    assert paired(records) == {('S', 'val', 1.0, '0.5-2', 'dnc'): {0: pytest.approx(-3.2)},
                               ('S', 'val', 1.0, '0.75-1.5', 'dnc'): {0: pytest.approx(-0.8)}}
    assert [row.split(' | ')[3] for row in table(records).splitlines()[2:]] == [
        '0.5-2', '0.5-2', '0.75-1.5', '0.75-1.5']


def test_a_recipe_variant_is_the_default_in_the_per_class_table_at_its_recipe():
    scale = {'train_dataloader.dataset.pipeline.2.ratio_range': [0.75, 1.5]}
    records = [record('twin', 0, 61.1, backbone_lr_mult=1.0),
               record('kmeans++ start', 0, 57.9, backbone_lr_mult=1.0),
               record('twin', 0, 62.2, backbone_lr_mult=1.0, options=scale),
               record('scale 0.75-1.5', 0, 61.4, backbone_lr_mult=1.0, options=scale)]
    rows = per_class_table(records, 'kmeans++ start').splitlines()[2:]
    assert [(r.split(' | ')[3], r.split(' | ')[5]) for r in rows] == [('0.5-2', '-3.2'),
                                                                      ('0.75-1.5', '-0.8')]


def test_the_configured_train_scale_is_read_from_its_random_resize():
    pipeline = [dict(type='CheckedLoadImageFromFile'), dict(type='CheckedLoadAnnotations'),
                dict(type='RandomResize', scale=(480, 360), ratio_range=(0.75, 1.5))]
    cfg = Config(dict(train_dataloader=dict(dataset=dict(pipeline=pipeline))))
    assert configured_train_scale(cfg) == (0.75, 1.5)
    cfg.train_dataloader.dataset.pipeline.insert(0, dict(type='LoadImageFromFile'))
    with pytest.raises(RuntimeError, match='not RandomResize'):  # moved: refused, not misread
        configured_train_scale(cfg)


def test_per_class_gaps_are_paired_means_over_seeds():
    records = []
    for seed, twin_iou, dnc_iou in [(0, (10.0, 50.0), (12.0, 44.0)),
                                    (1, (10.0, 50.0), (11.0, 48.0))]:
        for variant, (pole, bicyclist), miou in [('twin', twin_iou, 61.0 + seed),
                                                 ('dnc', dnc_iou, 60.0 + 2 * seed)]:
            r = record(variant, seed, miou, backbone_lr_mult=1.0)
            r['metrics'].update({'IoU.Pole': pole, 'IoU.Bicyclist': bicyclist})
            records.append(r)
    lines = per_class_table(records, 'dnc').splitlines()
    assert lines[0].split(' | ')[6:] == ['Pole', 'SignSymbol', 'Pedestrian', 'Bicyclist |']
    # mIoU -1.0 and +0.0; Pole +2 and +1; Bicyclist -6 and -2
    assert lines[2] == '| S | val | 1 | 0.5-2 | 0 1 | -0.5 | +1.5 | +0.0 | +0.0 | -4.0 |'
    assert len(lines) == 3
