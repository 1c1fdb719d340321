"""DNC exports wherever its parametric twin does: ONNX through the TorchScript
exporter with dynamic H, W (mmdeploy's path) and through dynamo with dynamic
shapes, torch.jit.trace and torch.export; the exported model gives the eager
logits on two image sizes. ONNX models run in onnxruntime."""
import io

import pytest
import torch
from torch.export import Dim

from mmseg.registry import MODELS
from mmseg_dnc.zoo import tiny_dnc_model_cfg

SIZES = [(64, 64), (96, 128)]  # exported at the first


def tiny_model(head: str, **dnc_keys):
    """mmseg's model for ``head``, CPU-sized, with DNC: ``model(x)`` is the
    head's logits (mmseg's 'tensor' mode), in eval mode."""
    cfg = tiny_dnc_model_cfg(head)
    cfg.decode_head.update(dnc_keys)
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    with torch.no_grad():  # sub-centroids as a trained model has them, not the start
        model.decode_head.sub_centroids.copy_(torch.nn.functional.normalize(
            torch.randn_like(model.decode_head.sub_centroids), dim=-1))
    return model


def images():
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(1, 3, h, w, generator=gen) for h, w in SIZES]


def dynamic_shapes():
    """H and W: any multiple of 32 (the backbones' stride)."""
    return {'inputs': {2: 32 * Dim('h32', min=1, max=64), 3: 32 * Dim('w32', min=1, max=64)}}


def eager(model, xs):
    with torch.no_grad():
        return [model(x) for x in xs]


def run_onnx(model_bytes: bytes, xs):
    import onnxruntime as ort  # in the lock: a missing one fails, never skips
    session = ort.InferenceSession(model_bytes, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return [torch.from_numpy(session.run(None, {name: x.numpy()})[0]) for x in xs]


def assert_same(outs, refs):
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert refs[0].shape[2:] != refs[1].shape[2:]  # the sizes really differed


@pytest.mark.parametrize('head, keys', [
    # not SegformerHead: mmseg's MiT backbone keeps the traced sequence length,
    # so its twin too fails at another size with this exporter
    ('DepthwiseSeparableASPPHead', {}),
    # unused slots of per-class K, and class scores by temperature
    ('FCNHead', dict(num_subcentroids=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10],
                     score_norm='temperature')),
])
def test_onnx_torchscript_exporter_with_dynamic_axes(head, keys):
    import onnx
    model, xs = tiny_model(head, **keys), images()
    buffer = io.BytesIO()
    torch.onnx.export(model, (xs[0],), buffer, dynamo=False, opset_version=17,
                      input_names=['inputs'], output_names=['logits'],
                      dynamic_axes={'inputs': {2: 'h', 3: 'w'}, 'logits': {2: 'h', 3: 'w'}})
    assert_same(run_onnx(buffer.getvalue(), xs), eager(model, xs))
    # the classifier as README describes it: one 1x1 conv C*K wide (no bias),
    # a max over K, LayerNorm over D (and over C with score_norm='layernorm')
    graph = onnx.load_from_string(buffer.getvalue()).graph
    head_module = model.decode_head
    c, k, d = head_module.sub_centroids.shape
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    convs = [n for n in graph.node if n.op_type == 'Conv'
             and shapes.get(n.input[1]) == (c * k, d, 1, 1)]
    assert len(convs) == 1 and len(convs[0].input) == 2
    ops = [n.op_type for n in graph.node]
    assert 'ReduceMax' in ops
    norms = 1 if keys.get('score_norm') == 'temperature' else 2
    assert ops.count('LayerNormalization') == norms


def test_onnx_dynamo_exporter_with_dynamic_shapes():
    import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    model, xs = tiny_model('FCNHead'), images()
    program = torch.onnx.export(model, (xs[0],), dynamo=True, input_names=['inputs'],
                                dynamic_shapes=dynamic_shapes(), optimize=False)
    assert_same(run_onnx(program.model_proto.SerializeToString(), xs), eager(model, xs))


@pytest.mark.parametrize('head', ['DepthwiseSeparableASPPHead', 'SegformerHead'])
def test_jit_trace(head):
    model, xs = tiny_model(head), images()
    with torch.no_grad():
        traced = torch.jit.trace(model, (xs[0],))
        assert_same([traced(x) for x in xs], eager(model, xs))


def test_torch_export_with_dynamic_shapes():
    model, xs = tiny_model('DepthwiseSeparableASPPHead'), images()
    exported = torch.export.export(model, (xs[0],), dynamic_shapes=dynamic_shapes())
    with torch.no_grad():
        assert_same([exported.module()(x) for x in xs], eager(model, xs))
