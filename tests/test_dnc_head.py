"""DNCDecodeHead on mmseg's own FCN, DeepLabV3 (ASPP) and Swin-UperNet models."""
import copy
import pickle
import re

import pytest
import torch
from mmengine.optim import OptimWrapper

from mmseg.registry import MODELS
from mmseg_dnc.models.dnc_head import DNCDecodeHead
from .conftest import build_model, make_batch, tiny_model_cfg

C = 5


def train_step(model, batch, lr=0.01):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr))
    return model.train_step(batch, optim)


def random_labels(b=2, h=64, w=64, num_classes=C, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (b, h, w), generator=gen)


def test_head_is_the_decoder_with_dnc_classifier(decoder):
    model = build_model(decoder, C)
    head = model.decode_head
    assert isinstance(head, DNCDecodeHead) and type(head).__name__ == f'DNC{decoder}'
    assert type(head).__mro__[2] is MODELS.get(decoder)
    assert not hasattr(head, 'conv_seg')
    state = model.state_dict()
    assert state['decode_head.sub_centroids'].shape == (C, 10, 32)
    assert not any('conv_seg' in key for key in state if key.startswith('decode_head'))
    # the decoder's own keys are exactly mmseg's parametric ones, minus conv_seg
    parametric = MODELS.build(tiny_model_cfg(decoder, C, dnc=False)).state_dict()
    ours = {k for k in state if k.startswith('decode_head')} - {
        'decode_head.sub_centroids', 'decode_head.subcentroid_seeded'} - {
        k for k in state if '_norm.' in k}
    assert ours == {k for k in parametric if k.startswith('decode_head')
                    and 'conv_seg' not in k}
    # sub-centroids are state, not parameters: no optimizer ever sees them
    assert all(p is not head.sub_centroids for p in model.parameters())
    torch.testing.assert_close(head.sub_centroids.norm(dim=-1), torch.ones(C, 10))
    # the auxiliary FCN head stays parametric
    assert type(model.auxiliary_head).__name__ == 'FCNHead'


def test_train_step_losses_and_update(decoder):
    model = build_model(decoder, C, subcentroid_init='random')  # moved, not seeded
    before = model.decode_head.sub_centroids.clone()
    log = train_step(model, make_batch(random_labels()))
    for key in ('decode.loss_ce', 'decode.loss_ppc', 'decode.loss_ppd', 'aux.loss_ce',
                'decode.acc_seg', 'loss'):
        assert key in log and torch.isfinite(log[key]), key
    assert log['decode.loss_ppc'] > 0 and log['decode.loss_ppd'] > 0
    after = model.decode_head.sub_centroids
    assert not torch.equal(before, after)
    torch.testing.assert_close(after.norm(dim=-1), torch.ones(C, 10))
    # momentum 0.999: a step moves a sub-centroid by at most about 2e-3
    assert (after - before).norm(dim=-1).max() < 3e-3


def test_predict_shapes_and_no_update(decoder):
    model = build_model(decoder, C)
    batch = make_batch(random_labels(h=64, w=96))
    before = model.decode_head.sub_centroids.clone()
    model.eval()
    with torch.no_grad():
        out = model.test_step(batch)
        logits = model.decode_head(model.extract_feat(
            model.data_preprocessor(batch)['inputs']))
    assert len(out) == 2 and out[0].pred_sem_seg.data.shape == (1, 64, 96)
    assert out[0].seg_logits.data.shape == (C, 64, 96)
    assert logits.shape[:2] == (2, C)
    assert torch.equal(before, model.decode_head.sub_centroids)
    model.train()  # train mode without a loss step: still no update
    with torch.no_grad():
        model.val_step(batch)
    assert torch.equal(before, model.decode_head.sub_centroids)


def test_all_ignored_labels():
    model = build_model('FCNHead', C)
    before = model.decode_head.sub_centroids.clone()
    log = train_step(model, make_batch(torch.full((2, 64, 64), 255)))
    assert all(torch.isfinite(v) for v in log.values())
    assert log['decode.loss_ppc'] == 0 and log['decode.loss_ppd'] == 0
    assert torch.equal(before, model.decode_head.sub_centroids)


def test_absent_classes_keep_their_subcentroids():
    model = build_model('ASPPHead', C, update_from='all')
    before = model.decode_head.sub_centroids.clone()
    labels = random_labels(num_classes=2)  # classes 0 and 1 only
    labels[:, :8] = 255
    train_step(model, make_batch(labels))
    after = model.decode_head.sub_centroids
    assert torch.equal(before[2:], after[2:])
    assert not torch.equal(before[:2], after[:2])


def test_update_only_from_correct_pixels():
    model = build_model('FCNHead', C, subcentroid_init='random')
    head = model.decode_head
    emb = torch.nn.functional.normalize(torch.randn(1, 32, 2, 2), dim=1)
    sub_scores = torch.zeros(1, C * 10, 2, 2)
    logits = torch.zeros(1, C, 2, 2)
    logits[:, 1] = 1.0  # predicts class 1 everywhere
    label = torch.zeros(1, 1, 2, 2, dtype=torch.long)  # all class 0: all wrong
    before = head.sub_centroids.clone()
    head.learn_subcentroids(emb, sub_scores, logits, label)
    assert torch.equal(before, head.sub_centroids)
    label[:] = 1  # all right
    head.learn_subcentroids(emb, sub_scores, logits, label)
    assert not torch.equal(before[1], head.sub_centroids[1])


def test_per_class_k_and_memory():
    ks = [1, 2, 3, 4, 10]
    model = build_model('FCNHead', C, num_subcentroids=ks, memory_size=16, update_from='all')
    head = model.decode_head
    assert head.sub_centroids.shape == (C, 10, 32)
    log = train_step(model, make_batch(random_labels()))
    assert torch.isfinite(log['loss'])
    assert (head.memory_filled == 16).all()  # ~25 labelled pixels per class at 8x8
    memory = head.memory.clone()
    log = train_step(model, make_batch(random_labels(seed=1), seed=1))  # Sinkhorn with memory
    assert torch.isfinite(log['loss']) and torch.isfinite(head.memory).all()
    # the queue moved on: new embeddings replaced old ones, in every class
    assert all(not torch.equal(memory[c], head.memory[c]) for c in range(C))
    assert torch.equal(model.state_dict()['decode_head.memory'], head.memory)


def test_init_weights_and_copies():
    model = build_model('UPerHead', C)
    model.init_weights()
    head = model.decode_head
    clone = copy.deepcopy(head)
    assert torch.equal(clone.sub_centroids, head.sub_centroids)
    restored = pickle.loads(pickle.dumps(head))
    assert type(restored) is type(head)


def test_bf16_autocast_train_step():
    model = build_model('ASPPHead', C)
    batch = make_batch(random_labels())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        for _ in range(3):
            log = train_step(model, batch)
    assert all(torch.isfinite(v) for v in log.values())
    sub = model.decode_head.sub_centroids
    assert sub.dtype == torch.float32 and torch.isfinite(sub).all()


def test_labels_out_of_range_are_named():
    """A training step refuses labels outside the classes before any loss,
    naming the file (the step's one label check)."""
    model = build_model('FCNHead', C)
    labels = random_labels()
    labels[0, 0, :8] = 7
    batch = make_batch(labels)
    batch['data_samples'][0].set_metainfo(dict(seg_map_path='trainannot/bad.png'))
    with pytest.raises(ValueError, match=r'(?s)outside the 5 classes.*bad.png: values \[7\]'):
        train_step(model, batch)


BASE = dict(in_channels=8, channels=8, num_classes=3, decoder='FCNHead')


@pytest.mark.parametrize('keys, message', [
    (dict(num_subcentroids=0), 'num_subcentroids=0 is invalid; K must be >= 1'),
    (dict(num_subcentroids=[2, 2]), 'a per-class list needs one K per class: 3 values, got 2'),
    (dict(momentum=1.0), 'momentum=1.0 is invalid; it must be in'),
    (dict(momentum=-0.1), 'momentum=-0.1'),
    (dict(momentum='0.99'), "momentum='0.99' is invalid"),
    (dict(num_subcentroids=[2, 0, 2]), 'every K must be an int >= 1'),
    (dict(num_subcentroids=100000), 'num_subcentroids=100000 is invalid; K must be <= 1000'),
    (dict(num_subcentroids=[2, 1001, 2]), 'num_subcentroids=[2, 1001, 2] is invalid; K must be '
                                          '<= 1000'),
    (dict(sinkhorn_epsilon=-0.05), 'sinkhorn_epsilon=-0.05'),
    (dict(sinkhorn_epsilon=0), 'sinkhorn_epsilon=0 is invalid'),
    (dict(sinkhorn_iterations=0), 'sinkhorn_iterations=0 is invalid'),
    (dict(sinkhorn_iterations=2.5), 'sinkhorn_iterations=2.5 is invalid'),
    (dict(num_classes=0), 'num_classes=0 is invalid'),
    (dict(loss_ppc_weight=-1), 'loss_ppc_weight=-1'),
    (dict(loss_ppd_weight=-1), 'loss_ppd_weight=-1'),
    (dict(update_from='wrong'), "update_from='wrong'"),
    # one rule for every numeric setting: bools are not numbers, reals are finite
    (dict(num_subcentroids=True), 'num_subcentroids=True is invalid'),
    (dict(num_subcentroids=10.0), 'an int K >= 1 .the paper uses 10. or a list'),
    (dict(num_subcentroids=None), 'num_subcentroids=None is invalid'),
    (dict(num_subcentroids='10'), "num_subcentroids='10' is invalid; it must be an int K"),
    (dict(num_subcentroids=[2, True, 2]), 'every K must be an int >= 1'),
    (dict(sinkhorn_epsilon=float('inf')), 'sinkhorn_epsilon=inf is invalid; it must be > 0, a finite'),
    (dict(ppc_temperature=float('inf')), 'ppc_temperature=inf'),
    (dict(score_temperature=float('nan')), 'score_temperature=nan'),
    (dict(loss_ppd_weight=float('inf')), 'loss_ppd_weight=inf'),
    (dict(momentum=True), 'momentum=True is invalid'),
    (dict(sinkhorn_iterations=True), 'sinkhorn_iterations=True'),
    (dict(memory_size=False), 'memory_size=False'),
    (dict(projection='no'), "projection='no' is invalid; use one of True, False"),
    (dict(projection=1), "projection=1 is invalid"),
    (dict(update_assignment='gumbel'), "update_assignment='gumbel' is invalid; use one of "
                                       "'sinkhorn_argmax', 'gumbel_sample'"),
    (dict(momentum_warmup='yes'), "momentum_warmup='yes'"),
    (dict(subcentroid_init='kmeans'), "subcentroid_init='kmeans' is invalid; use one of 'random'"),
    (dict(restart_dead_below=1.0), 'restart_dead_below=1.0'),
    (dict(restart_dead_every=0), 'restart_dead_every=0'),
    (dict(restart_on='hardest'), "restart_on='hardest' is invalid; use one of 'worst', 'random'"),
])
def test_bad_settings_fail_at_build(keys, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace('(', r'\(')):
        MODELS.build(dict(BASE, type='DNCDecodeHead', **keys))


def test_the_bound_on_k_says_what_k_would_cost_and_can_be_raised(monkeypatch):
    from mmseg_dnc.models import build_checks
    with pytest.raises(ValueError, match=re.escape(
            "every pixel of the decoder's feature map is scored against all 3 x 100000 = "
            '300,000 sub-centroids, 1.1 MiB of float32 scores per pixel, 4,688 MiB per image '
            'at a 64x64 feature map') + '.*raise mmseg_dnc.models.build_checks.MAX_SUBCENTROIDS'):
        MODELS.build(dict(BASE, type='DNCDecodeHead', num_subcentroids=100000))
    assert MODELS.build(dict(BASE, type='DNCDecodeHead', num_subcentroids=1000)) \
        .sub_centroids.shape == (3, 1000, 8)
    monkeypatch.setattr(build_checks, 'MAX_SUBCENTROIDS', 2000)
    head = MODELS.build(dict(BASE, type='DNCDecodeHead', num_subcentroids=[2, 1001, 2]))
    assert head.sub_centroids.shape == (3, 1001, 8)


@pytest.mark.parametrize('decoder, message', [
    ('NoSuchHead', "no such head in mmseg's MODELS registry"),
    ('Mask2FormerHead', 'Mask2FormerHead is a mask-classification head'),
    ('SegmenterMaskTransformerHead', 'is a mask-classification head .Segmenter'),
    ('PointHead', 'its `cls_seg` is a Conv1d over sampled points'),
    ('VPDDepthHead', 'a depth regression head'),
    ('ResNet', 'ResNet is not an mmseg decode head'),
    (None, 'DNCDecodeHead needs `decoder`'),
    ('', "decoder=''.: empty; give the type"),
    (123, 'decoder=123.: a int; give the decode head type by its registry name'),
])
def test_unsupported_decoders_are_named(decoder, message):
    with pytest.raises((KeyError, TypeError), match=message):
        MODELS.build(dict(BASE, type='DNCDecodeHead', decoder=decoder))


def test_psphead_works_too():
    head = MODELS.build(dict(type='DNCDecodeHead', decoder='PSPHead', in_channels=8,
                             channels=8, num_classes=3, pool_scales=(1, 2)))
    assert head([torch.randn(2, 8, 6, 6)]).shape == (2, 3, 6, 6)


@pytest.mark.parametrize('keys', [
    dict(projection=True), dict(score_norm='temperature'),
    dict(projection='conv_relu_conv', update_assignment='gumbel_sample', ppc_temperature=1.0)])
def test_options_train(keys):
    model = build_model('FCNHead', C, **keys)
    head = model.decode_head
    assert (head.projection is not None) == bool(keys.get('projection', False))
    assert (head.score_norm is None) == (keys.get('score_norm') == 'temperature')
    log = train_step(model, make_batch(random_labels()))
    assert all(torch.isfinite(v) for v in log.values())


def test_half_precision_inference_matches_float():
    model = build_model('FCNHead', C)
    head = model.decode_head.eval()
    x = torch.randn(2, head.in_channels, 8, 8)
    with torch.no_grad():  # the base config's FCNHead reads in_index=3
        full = head([None, None, None, x])
        half = copy.deepcopy(head).to(torch.bfloat16)([None, None, None, x.bfloat16()])
    assert half.dtype == torch.bfloat16 and half.shape == full.shape
    agree = (half.float().argmax(1) == full.argmax(1)).float().mean()
    assert agree > 0.9, agree


def test_a_dnc_head_is_not_a_decoder():
    from mmseg_dnc.models.dnc_head import dnc_class_for
    with pytest.raises(TypeError, match='already a DNC head'):
        MODELS.build(dict(BASE, type='DNCDecodeHead', decoder=dnc_class_for(MODELS.get('FCNHead'))))


def test_labels_outside_the_classes_name_the_file_before_the_loss():
    model = build_model('FCNHead', 5)
    labels = torch.zeros(2, 32, 32, dtype=torch.long)
    labels[1, :4, :4] = 20
    batch = make_batch(labels)
    batch['data_samples'][1].set_metainfo(dict(seg_map_path='/data/ann/b.png'))
    data = model.data_preprocessor(batch, True)
    with pytest.raises(ValueError, match=r'(?s)outside the 5 classes.*/data/ann/b.png: '
                                         r'values \[20\].*num_classes'):
        model.loss(data['inputs'], data['data_samples'])


def test_non_finite_subcentroids_in_a_checkpoint_are_refused():
    head = MODELS.build(dict(BASE, type='DNCDecodeHead'))
    state = head.state_dict()
    state['sub_centroids'][0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='holds 1 non-finite values.*earlier checkpoint'):
        MODELS.build(dict(BASE, type='DNCDecodeHead')).load_state_dict(state)


def one_row_zero(sub):
    sub = sub.clone()
    sub[2, 7] = 0
    return sub


@pytest.mark.parametrize('make, message', [
    (torch.zeros_like, r'holds 30 of 30 sub-centroids that are not unit vectors \(norm outside '
                       r'1 \+- 0.001\), 30 of them all zero; \(class, slot\): \[0, 0\] \(norm 0\), '
                       r'\[0, 1\] \(norm 0\), \[0, 2\] \(norm 0\) and 27 more'),
    (one_row_zero, r'holds 1 of 30 .*1 of them all zero; \(class, slot\): \[2, 7\] \(norm 0\)\.'),
    (lambda sub: sub * 2, r'holds 30 of 30 sub-centroids that are not unit .*\(norm 2\)'),
    (lambda sub: sub.round().long(), r'is torch.int64: sub-centroids are unit vectors of a '
                                     r'floating dtype'),
    (lambda sub: sub > 0, r'is torch.bool: sub-centroids are unit vectors'),
], ids=['all zero', 'one row zero', 'scaled', 'int64', 'bool'])
def test_subcentroids_that_are_not_unit_vectors_are_refused(make, message):
    state = MODELS.build(dict(BASE, type='DNCDecodeHead')).state_dict()
    state['sub_centroids'] = make(state['sub_centroids'])
    with pytest.raises(ValueError, match=r'(?s)^sub_centroids in the checkpoint ' + message +
                       r".*delete 'sub_centroids'.*load_from=CHECKPOINT"):
        MODELS.build(dict(BASE, type='DNCDecodeHead')).load_state_dict(state)


def test_unit_subcentroids_load_in_any_floating_dtype_and_unused_slots_stay_unit():
    state = MODELS.build(dict(BASE, type='DNCDecodeHead')).state_dict()
    sub = state['sub_centroids']
    for dtype in (torch.float64, torch.float16, torch.bfloat16):  # unit to their rounding
        head = MODELS.build(dict(BASE, type='DNCDecodeHead'))
        head.load_state_dict(dict(state, sub_centroids=sub.to(dtype)))
        torch.testing.assert_close(head.sub_centroids, sub.to(dtype).float())
    # per-class K: the unused slots are random unit vectors, in the head and in the checkpoint
    per_class = dict(BASE, type='DNCDecodeHead', num_subcentroids=[10, 4, 10])
    head = MODELS.build(per_class)
    assert not head.used_slots[1, 4:].any()
    torch.testing.assert_close(head.sub_centroids.norm(dim=-1), torch.ones(3, 10))
    MODELS.build(per_class).load_state_dict(head.state_dict())
    unused_zero = head.state_dict()
    unused_zero['sub_centroids'][1, 4:] = 0
    with pytest.raises(ValueError, match=r'holds 6 of 30 .*\[1, 4\] \(norm 0\)'):
        MODELS.build(per_class).load_state_dict(unused_zero)


def test_decoders_are_judged_by_their_cls_seg():
    from mmseg.models.decode_heads import FCNHead

    class NoClassifier(FCNHead):
        def forward(self, inputs):
            return self._forward_feature(inputs)

    class TwoClassifiers(FCNHead):
        def forward(self, inputs):
            feat = self._forward_feature(inputs)
            return self.cls_seg(feat) + self.cls_seg(feat)

    class OwnClassifier(FCNHead):
        def cls_seg(self, feat):
            return feat

    keys = dict(BASE, type='DNCDecodeHead', num_convs=1)
    with pytest.raises(TypeError, match='NoClassifier never calls `cls_seg`'):
        MODELS.build(dict(keys, decoder=NoClassifier))
    with pytest.raises(TypeError, match=r'OwnClassifier classifies with its own `cls_seg` '
                                        r'\(from OwnClassifier\)'):
        MODELS.build(dict(keys, decoder=OwnClassifier))
    head = MODELS.build(dict(keys, decoder=TwoClassifiers))
    assert head([torch.randn(1, 8, 4, 4)]).shape == (1, 3, 4, 4)  # inference is the decoder's
    with pytest.raises(RuntimeError, match='training step called cls_seg 2 times'):
        head.loss([torch.randn(1, 8, 4, 4)], make_batch(torch.zeros(1, 4, 4).long())[
            'data_samples'], None)
    assert head._classified is None  # a failed step leaves nothing recorded behind
    with pytest.raises(RuntimeError, match='boom'), head.classified() as calls:
        head.cls_seg(torch.randn(1, 8, 2, 2))
        assert len(calls) == 1
        raise RuntimeError('boom')
    assert head._classified is None
    with pytest.raises(ValueError, match='features .1, 4, 2, 2.; DNC embeds `channels`=8'):
        head.cls_seg(torch.randn(1, 4, 2, 2))


def test_predict_subcentroids_is_what_forward_classified():
    model = build_model('ASPPHead', C).eval()
    head = model.decode_head
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))
        logits, nearest = head.predict_subcentroids(feats)
        assert torch.equal(logits, head(feats))
        out = head.classify(feats)
        emb, sub_scores = out.embeddings, out.sub_scores
    best = sub_scores.view(1, C, 10, 8, 8).gather(2, nearest[:, :, None]).squeeze(2)
    assert torch.equal(best, sub_scores.view(1, C, 10, 8, 8).amax(dim=2))
    assert emb.shape == (1, 32, 8, 8) and head._classified is None
