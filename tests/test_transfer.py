"""Loading checkpoints of other heads: a DNC model trained for 150 classes
into one for 19 (the paper's transfer), and a parametric mmseg checkpoint
into a DNC model. Every weight that fits is loaded; what belongs to the old
classes is re-initialised, with one line saying so."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.runner import load_checkpoint

from mmseg.registry import MODELS
from .conftest import build_model, make_batch, tiny_model_cfg


def perturbed(model):
    """Every parameter and BN statistic moved away from the seed-0 init that
    the target model also starts from, so 'loaded' cannot pass by accident;
    the sub-centroids stay unit vectors, as every checkpoint holds them."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor) + 0.5)
            if name.endswith('sub_centroids'):
                tensor.copy_(F.normalize(tensor, dim=-1))
    return model


def save(model, path):
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


def not_loaded(target, source_state):
    return sorted(k for k, v in target.state_dict().items()
                  if not (k in source_state and torch.equal(v, source_state[k])))


def messages(records):
    return [record.getMessage() for record in records]


@pytest.mark.parametrize('memory_size', [0, 8])
def test_dnc_150_classes_into_19(tmp_path, warnings_logged, memory_size):
    source = perturbed(build_model('ASPPHead', num_classes=150, memory_size=memory_size))
    ckpt = save(source, tmp_path / 'ade.pth')
    target = build_model('ASPPHead', num_classes=19, memory_size=memory_size)
    before = target.decode_head.sub_centroids.clone()
    load_checkpoint(target, ckpt, map_location='cpu', strict=False, logger='current')

    head = target.decode_head
    class_state = ['decode_head.' + name for name in head.class_state()]
    # all that is not tied to the classes came from the checkpoint; the
    # auxiliary head's classifier, 150 wide, is left out by mmengine
    assert not_loaded(target, source.state_dict()) == sorted(
        class_state + ['auxiliary_head.conv_seg.bias', 'auxiliary_head.conv_seg.weight'])
    assert head.sub_centroids.shape == (19, 10, 32)
    assert torch.allclose(head.sub_centroids.norm(dim=-1), torch.ones(19, 10))
    assert not torch.equal(head.sub_centroids, before)  # drawn anew
    assert torch.equal(head.score_norm.weight, torch.ones(19))
    assert torch.equal(head.score_norm.bias, torch.zeros(19))
    if memory_size:
        assert head.memory.abs().sum() == 0 and head.memory_filled.sum() == 0
    ours = [w for w in messages(warnings_logged) if 're-initialised' in w]
    # one line for the decode head; mmengine lists the auxiliary head's classifier
    assert len(ours) == 1 and len(messages(warnings_logged)) == 2
    mmengine_list = [w for w in messages(warnings_logged) if w not in ours][0]
    assert 'size mismatch for auxiliary_head.conv_seg.weight' in mmengine_list
    assert 'decode_head' not in mmengine_list
    assert ("decode_head: the checkpoint's sub-centroids are (150, 10, 32) (classes, K, "
            "channels), this model's (19, 10, 32)") in ours[0]
    assert all(name in ours[0] for name in head.class_state())

    labels = torch.randint(0, 19, (2, 64, 64))
    wrapper = OptimWrapper(torch.optim.SGD(target.parameters(), lr=0.01))
    losses = target.train_step(make_batch(labels), wrapper)
    assert all(torch.isfinite(v).all() for v in losses.values())


def test_parametric_checkpoint_into_dnc(tmp_path, warnings_logged):
    source = perturbed(MODELS.build(tiny_model_cfg('ASPPHead', 19, dnc=False)))
    ckpt = save(source, tmp_path / 'deeplabv3.pth')
    target = build_model('ASPPHead', num_classes=19)
    load_checkpoint(target, ckpt, map_location='cpu', strict=False, logger='current')
    dnc_only = ['feature_norm.weight', 'feature_norm.bias', *target.decode_head.class_state()]
    assert not_loaded(target, source.state_dict()) == sorted(
        'decode_head.' + name for name in dnc_only)
    warnings = messages(warnings_logged)  # one line, not mmengine's missing/unexpected lists
    assert warnings == [
        'decode_head: the checkpoint has a parametric head: its 1x1 classifier '
        '(decode_head.conv_seg.weight, decode_head.conv_seg.bias) has no place in DNC and is '
        "skipped, and DNC's own layers (feature_norm) start from their initialisation; "
        'sub_centroids, subcentroid_seeded, score_norm.weight, score_norm.bias are '
        're-initialised; the rest of '
        'the checkpoint loads as usual.']


def test_same_classes_load_silently_and_exactly(tmp_path, warnings_logged):
    source = perturbed(build_model('FCNHead', num_classes=7))
    ckpt = save(source, tmp_path / 'same.pth')
    target = build_model('FCNHead', num_classes=7)
    load_checkpoint(target, ckpt, map_location='cpu', strict=True, logger='current')
    assert not_loaded(target, source.state_dict()) == []
    assert messages(warnings_logged) == []


def test_a_memory_of_another_size_starts_empty(tmp_path, warnings_logged):
    source = build_model('FCNHead', num_classes=5, memory_size=16, update_from='all')
    labels = torch.randint(0, 5, (2, 64, 64))
    source.train_step(make_batch(labels), OptimWrapper(torch.optim.SGD(source.parameters(), lr=0)))
    assert source.decode_head.memory_filled.sum() > 0
    ckpt = save(source, tmp_path / 'memory16.pth')
    target = build_model('FCNHead', num_classes=5, memory_size=8)
    load_checkpoint(target, ckpt, map_location='cpu', strict=False, logger='current')
    head = target.decode_head
    assert torch.equal(head.sub_centroids, source.decode_head.sub_centroids)
    assert head.memory_filled.sum() == 0 and head.memory_pointer.sum() == 0
    assert any("the checkpoint's memory is (5, 16, 32), this model's (5, 8, 32); the memory "
               'starts empty' in m for m in messages(warnings_logged))
