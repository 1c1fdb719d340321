"""What DNC costs against the 1x1 conv head, and the batched assignment against
a per-class loop. Prints tables (markdown) and writes JSON.

  a. head only (the classifier on given decoder features, labels at 8x), ADE20K
     (150 classes) and Cityscapes (19) sizes, K=10, 512 channels, feature
     batches 2x64x64 and 8x64x64: training step and inference, DNC / 1x1 conv,
     peak memory;
  b. whole model, DNC / parametric twin, both models in one process, their
     steps timed in alternation (twin, DNC, twin, ...): the median of the
     paired ratios with its range, and peak training memory from allocator
     counts, DNC's also with plain autograd (``lean_grad.plain_autograd``):
     - the main job's model (EfficientNet-Lite0 ImageNet + SegFormer head,
       CamVid, 11 classes): training step on its 4 crops of 240x320,
       inference per image at CamVid's full 360x480, in PyTorch and through
       ONNX Runtime (each head's model exported, the DNC graph is the 1x1
       conv K times wider plus a max);
     - DeepLabV3 and FCN (ResNet-18-D8, 150 classes, 512 channels, 2x256x256
       images on CPU, 4x512x512 on GPU);
     - DeepLabV3 ResNet-101-D8 (150 classes, 2x512x512): peak training
       memory of one step only (a CPU's minutes per step);
  c. assignment (Sinkhorn + momentum update) of the head, batched over all
     classes, against the per-class Python loop of the public predecessors
     (kept here as the yardstick), at 19 and 150 classes, every class present:
     time, ratio, share of the head's training step, and whether both give
     the same assignment; and the head's whole assignment and update with
     every learning mechanism on (seeding, warm-up, starved classes, restarts)
     as a share of its training step;
  d. scaling of the head's training step with pixels and with classes.

On a GPU, times come from CUDA events after warm-up and synchronisation, and
memory from torch.cuda.max_memory_allocated; on the CPU, wall time, and for
memory the peak of the allocator's running total over one step, replayed from
torch.profiler's memory events (deterministic, unlike the process's resident
memory). Every case runs in a fresh process.

    python bench/dnc_cost.py [--quick] [--out FILE.json] [--sections a b c d]
                             [--models camvid deeplabv3-r18 fcn-r18 deeplabv3-r101]
"""
import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from mechanisms import ALL_MECHANISMS  # bench/: every learning mechanism on

SECTIONS = ('a', 'b', 'c', 'd')


# ----------------------------------------------------------------- measuring
def allocator_peak_mib(fn) -> float:
    """Peak bytes held by tensors allocated during one call of ``fn`` on the
    CPU, from the profiler's allocation and free events in time order."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    held = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        held += event.nbytes()
        peak = max(peak, held)
    return peak / 2**20


def _one_ms(fn) -> float:
    """Milliseconds of one call (synchronised on the GPU)."""
    if torch.cuda.is_available():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t0)


def _timed(fn, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` (synchronised on the GPU)."""
    for _ in range(warmup):
        fn()
    return statistics.median(_one_ms(fn) for _ in range(repeats))


def _measure(case: dict, queue):
    """Runs in a fresh process: build the case, time it, report peak memory."""
    import mmseg_dnc  # noqa: F401
    from mmseg.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cpu':  # as the tools run on a CPU (adapt_to_cpu)
        from mmseg_dnc.utils.cpu import keep_freed_memory
        keep_freed_memory()
    if case['kind'] == 'pair':
        queue.put(_measure_pair(case, device))
        return
    step = BUILDERS[case['kind']](case, device)
    step()  # first call outside the peak baseline: lazy allocations settle
    peak = _peak_mib(step, device)
    ms = _timed(step, case['repeats'])
    queue.put(dict(ms=ms, peak_mib=max(peak, 0.0)))


def _peak_mib(step, device) -> float:
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return allocator_peak_mib(step)


def _measure_pair(case: dict, device) -> dict:
    """The twin and DNC in one process, timed in alternation: the machine's
    drifts (other load, frequency) fall on both alike."""
    from mmseg_dnc.models.lean_grad import plain_autograd
    if case['mode'] == 'onnx':
        steps = {dnc: onnx_step(build_model_case(dict(case, dnc=dnc, mode='infer'), device))
                 for dnc in (False, True)}
    else:
        steps = {dnc: build_model_case(dict(case, dnc=dnc), device) for dnc in (False, True)}
    for step in steps.values():
        step()  # lazy allocations settle
    result = {}
    if case['mode'] == 'train':
        result.update(twin_peak_mib=_peak_mib(steps[False], device),
                      dnc_peak_mib=_peak_mib(steps[True], device))
        with plain_autograd():
            steps[True]()
            result['dnc_plain_peak_mib'] = _peak_mib(steps[True], device)
    if not case['repeats']:
        return result
    for _ in range(2):
        for step in steps.values():
            step()
    times = {False: [], True: []}
    for i in range(case['repeats']):
        # in turn first and second (twin-DNC, DNC-twin, ...): neither always
        # runs in the state the other leaves behind
        for dnc in ((False, True), (True, False))[i % 2]:
            times[dnc].append(_one_ms(steps[dnc]))
    ratios = sorted(d / t for t, d in zip(times[False], times[True]))
    result.update(twin_ms=statistics.median(times[False]), dnc_ms=statistics.median(times[True]),
                  ratio=statistics.median(ratios), ratio_min=ratios[0], ratio_max=ratios[-1])
    return result


def measure(case: dict) -> dict:
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(case, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# -------------------------------------------------------------------- cases
def _samples(b, h, w, classes, device):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    out = []
    for _ in range(b):
        s = SegDataSample(gt_sem_seg=PixelData(
            data=torch.randint(0, classes, (1, h, w), device=device)))
        s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w)))
        out.append(s)
    return out



def build_head_case(case, device):
    from mmseg.registry import MODELS
    cfg = dict(type='FCNHead', in_channels=512, channels=512, num_convs=0,
               concat_input=False, num_classes=case['classes'], dropout_ratio=0.1)
    if case['dnc']:
        cfg.update(type='DNCDecodeHead', decoder='FCNHead', num_subcentroids=10,
                   **case.get('learning', {}))
    head = MODELS.build(cfg).to(device)
    b, s = case['batch'], case['size']
    feats = torch.randn(b, 512, s, s, device=device, requires_grad=True)
    samples = _samples(b, 8 * s, 8 * s, case['classes'], device)
    if case['mode'] == 'train':
        head.train()

        def step():
            losses = head.loss([feats], samples, None)
            sum(v for k, v in losses.items() if k.startswith('loss')).backward()
            feats.grad = None
            head.zero_grad(set_to_none=True)
        step.head = head
        return step
    head.eval()

    def infer():
        with torch.no_grad():
            head([feats])
    return infer


# section b's models: --models name -> (table name, what to build)
MODELS_B = {
    'camvid': ('EfficientNet-Lite0 + SegFormer head, CamVid (the main job)', 'camvid'),
    'deeplabv3-r18': ('DeepLabV3 R18-D8, 150 classes', ('ASPPHead', 18)),
    'fcn-r18': ('FCN R18-D8, 150 classes', ('FCNHead', 18)),
    'deeplabv3-r101': ('DeepLabV3 R101-D8, 150 classes', ('ASPPHead', 101)),
}
CAMVID_CONFIG = 'configs/{}/segformer_efficientnet-lite0_camvid.py'


def _model_cfg(case):
    """The twin's or DNC's model config for ``case['model']``."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmseg_dnc.utils import replace_sync_bn
    spec = MODELS_B[case['model']][1]
    if spec == 'camvid':  # the main job's configs, pretrained weights included
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cfg = Config.fromfile(os.path.join(
            root, CAMVID_CONFIG.format('dnc' if case['dnc'] else 'parametric')))
        return cfg.model, cfg.model.decode_head.num_classes
    decoder, depth = spec
    base = {'ASPPHead': 'mmseg::_base_/models/deeplabv3_r50-d8.py',
            'FCNHead': 'mmseg::_base_/models/fcn_r50-d8.py'}[decoder]
    model_cfg = replace_sync_bn(get_config(base).model)
    model_cfg.pretrained = None
    model_cfg.backbone.depth = depth
    if depth == 18:
        model_cfg.decode_head.update(in_channels=512, channels=512)
        model_cfg.auxiliary_head.update(in_channels=256, channels=256)
    model_cfg.decode_head.num_classes = model_cfg.auxiliary_head.num_classes = 150
    if case['dnc']:
        model_cfg.decode_head.update(type='DNCDecodeHead', decoder=decoder)
    return model_cfg, 150


def build_model_case(case, device):
    from mmengine.optim import OptimWrapper
    from mmseg.registry import MODELS
    model_cfg, classes = _model_cfg(case)
    b, (h, w) = case['batch'], case['size']
    model_cfg.data_preprocessor.size = (h, w)
    model = MODELS.build(model_cfg).to(device)
    model.init_weights()
    gen = torch.Generator().manual_seed(0)
    data = dict(inputs=[torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
                        for _ in range(b)], data_samples=_samples(b, h, w, classes, 'cpu'))
    if case['mode'] == 'train':
        model.train()
        optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
        return lambda: model.train_step(data, optim)
    model.eval()
    step = lambda: model.test_step(data)  # noqa: E731
    step.model, step.size = model, (b, 3, h, w)
    return step


def onnx_step(step):
    """The model of an inference ``step`` exported to ONNX (TorchScript
    exporter, opset 17, its logits) and run by ONNX Runtime on the CPU."""
    import io

    import onnxruntime as ort
    x = torch.randn(step.size, generator=torch.Generator().manual_seed(0))
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(step.model, (x,), buffer, dynamo=False, opset_version=17,
                          input_names=['inputs'], output_names=['logits'])
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(buffer.getvalue(), options,
                                   providers=['CPUExecutionProvider'])
    feed = {'inputs': x.numpy()}
    return lambda: session.run(None, feed)


def build_assign_case(case, device):
    from mmseg_dnc.models import dnc_core
    c, k, d, n = case['classes'], 10, 512, case['pixels']
    gen = torch.Generator(device=device).manual_seed(0)
    sub = F.normalize(torch.randn(c, k, d, device=device, generator=gen), dim=-1)
    x = F.normalize(torch.randn(n, d, device=device, generator=gen), dim=-1)
    y = torch.arange(n, device=device) % c  # every class present
    own = torch.einsum('nd,nkd->nk', x, sub[y])
    if case['impl'] == 'batched':
        def step():
            _, assignment = dnc_core.sinkhorn_assign(own, y, c)
            dnc_core.momentum_update(sub, x, y, assignment)
        return step
    return lambda: per_class_loop(own, x, y, sub)


def build_head_update_case(case, device):
    """The head's own assignment and update with every learning mechanism on,
    on the inputs of one training step of the head case (after the step that
    seeds the classes)."""
    train = build_head_case(dict(case, mode='train'), device)
    head = train.head
    captured = {}
    original = head.assign_and_update

    def capture(*args):
        captured['args'] = args
        return original(*args)
    head.assign_and_update = capture
    train()
    head.assign_and_update = original

    def step():
        with torch.no_grad():
            head.assign_and_update(*captured['args'])
    return step


BUILDERS = dict(head=build_head_case, model=build_model_case, assign=build_assign_case,
                head_update=build_head_update_case)


# ------------------------------------------------- the predecessors' yardstick
def per_class_loop(own, x, y, sub, epsilon=0.05, iterations=3, momentum=0.999):
    """ProtoSeg's prototype learning, one class at a time, with its Gumbel
    sampling replaced by the argmax so that it computes the same thing as the
    batched head: exp-domain Sinkhorn, then a momentum step per sub-centroid."""
    new = sub.clone()
    assignment = torch.empty_like(y)
    for c in torch.unique(y).tolist():
        mine = y == c
        plan = torch.exp(own[mine] / epsilon).t()  # (K, n)
        plan /= plan.sum()
        k, n = plan.shape
        for _ in range(iterations):
            plan /= plan.sum(dim=1, keepdim=True)
            plan /= k
            plan /= plan.sum(dim=0, keepdim=True)
            plan /= n
        index = (plan * n).t().argmax(dim=1)
        assignment[mine] = index
        one_hot = F.one_hot(index, k).to(x.dtype)
        sums = one_hot.t() @ x[mine]  # (K, D)
        counts = one_hot.sum(dim=0)
        moved = F.normalize(momentum * sub[c] + (1 - momentum) * F.normalize(sums, dim=-1),
                            dim=-1)
        new[c] = torch.where(counts[:, None] > 0, moved, sub[c])
    return assignment, new


def same_assignment(classes: int, pixels: int) -> float:
    """Share of pixels the batched head and the loop assign alike."""
    from mmseg_dnc.models import dnc_core
    torch.manual_seed(0)
    sub = F.normalize(torch.randn(classes, 10, 512), dim=-1)
    x = F.normalize(torch.randn(pixels, 512), dim=-1)
    y = torch.arange(pixels) % classes
    own = torch.einsum('nd,nkd->nk', x, sub[y])
    _, batched = dnc_core.sinkhorn_assign(own.double(), y, classes)
    looped, _ = per_class_loop(own.double(), x.double(), y, sub.double())
    return float((batched == looped).float().mean())


# -------------------------------------------------------------------- report
def table(title, header, rows):
    lines = [f'\n{title}', '| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(['---'] + ['---:'] * (len(header) - 1)) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    print('\n'.join(lines), flush=True)


def _images(spec) -> str:
    return '' if spec is None else '{}x{}x{}'.format(spec[0], *spec[1])


def _timing(cell) -> list:
    """Twin ms, DNC ms and their paired ratio with its range; blanks if untimed."""
    if cell is None or 'ratio' not in cell:
        return ['', '', '']
    return [f"{cell['twin_ms']:.0f}", f"{cell['dnc_ms']:.0f}",
            f"{cell['ratio']:.3f}x ({cell['ratio_min']:.2f}-{cell['ratio_max']:.2f})"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument('--quick', action='store_true', help='fewer repeats and sizes')
    parser.add_argument('--models', nargs='+', choices=list(MODELS_B), default=list(MODELS_B),
                        help="section b's models")
    parser.add_argument('--pairs', type=int, default=15,
                        help="section b: paired steps timed per model and mode")
    parser.add_argument('--out', default='work_dirs/bench_dnc_cost.json')
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    repeats = 3 if args.quick else 7
    device = torch.cuda.get_device_name() if gpu else \
        f'CPU {platform.machine()}, {torch.get_num_threads()} threads'
    print(f'{device}; torch {torch.__version__}')
    results = dict(device=device)

    if 'a' in args.sections:
        rows, out = [], []
        for name, classes in (('ADE20K', 150), ('Cityscapes', 19)):
            for batch in ((2,) if args.quick else (2, 8)):
                cells = {}
                for dnc in (False, True):
                    for mode in ('train', 'infer'):
                        cells[dnc, mode] = measure(dict(kind='head', classes=classes, batch=batch,
                                                        size=64, dnc=dnc, mode=mode,
                                                        repeats=repeats))
                out.append(dict(dataset=name, batch=batch, **{
                    f"{'dnc' if d else 'conv'}_{m}": v for (d, m), v in cells.items()}))
                t0, t1 = cells[False, 'train'], cells[True, 'train']
                i0, i1 = cells[False, 'infer'], cells[True, 'infer']
                rows.append((f'{name} ({classes})', f'{batch}x64x64',
                             f"{t0['ms']:.0f}", f"{t1['ms']:.0f}", f"{t1['ms'] / t0['ms']:.2f}x",
                             f"{i0['ms']:.1f}", f"{i1['ms']:.1f}", f"{i1['ms'] / i0['ms']:.2f}x",
                             f"{t0['peak_mib']:.0f}", f"{t1['peak_mib']:.0f}"))
        results['a_head'] = out
        table('a. Head only (K=10, 512 channels, labels at 8x the feature size)',
              ['classes', 'features', 'train 1x1 (ms)', 'train DNC (ms)', 'ratio',
               'infer 1x1 (ms)', 'infer DNC (ms)', 'ratio', 'train peak 1x1 (MiB)',
               'train peak DNC (MiB)'], rows)

    if 'b' in args.sections:
        rows, out = [], []
        pairs = 5 if args.quick else args.pairs
        r18 = ((4, (512, 512)),) * 2 if gpu else ((2, (256, 256)),) * 2
        # model -> (train batch and size, inference batch and size)
        plan = {'camvid': ((4, (240, 320)), (1, (360, 480))), 'deeplabv3-r18': r18,
                'fcn-r18': r18, 'deeplabv3-r101': ((2, (512, 512)), None)}
        for model_name in args.models:
            train, infer = plan[model_name]
            timed = infer is not None
            cells = {'train': measure(dict(kind='pair', model=model_name, mode='train',
                                           batch=train[0], size=train[1],
                                           repeats=pairs if timed else 0))}
            if timed:
                for mode in ('infer', 'onnx'):
                    cells[mode] = measure(dict(kind='pair', model=model_name, mode=mode,
                                               batch=infer[0], size=infer[1], repeats=pairs))
            out.append(dict(model=model_name, pairs=pairs, train_images=train,
                            infer_images=infer, **cells))
            t = cells['train']
            row = [MODELS_B[model_name][0], _images(train), *_timing(cells.get('train')), _images(infer),
                   *_timing(cells.get('infer')), _timing(cells.get('onnx'))[-1],
                   f"{t['twin_peak_mib']:.0f}", f"{t['dnc_peak_mib']:.0f}",
                   f"{t['dnc_peak_mib'] / t['twin_peak_mib']:.3f}x",
                   f"{t['dnc_plain_peak_mib'] / t['twin_peak_mib']:.3f}x"]
            rows.append(row)
        results['b_model'] = out
        table(f'b. Whole model (DNC / parametric twin, median of {pairs} paired steps, range in '
              'brackets; peak training memory from allocator counts)',
              ['model', 'train images', 'train twin (ms)', 'train DNC (ms)', 'ratio',
               'inference images', 'infer twin (ms)', 'infer DNC (ms)', 'ratio',
               'ONNX Runtime ratio', 'train peak twin (MiB)', 'train peak DNC (MiB)',
               'peak ratio', 'peak ratio, plain autograd'], rows)

    if 'c' in args.sections:
        rows, out = [], []
        for classes in (19, 150):
            pixels = 2 * 64 * 64
            batched = measure(dict(kind='assign', impl='batched', classes=classes, pixels=pixels,
                                   repeats=repeats))
            looped = measure(dict(kind='assign', impl='loop', classes=classes, pixels=pixels,
                                  repeats=repeats))
            head = measure(dict(kind='head', classes=classes, batch=2, size=64, dnc=True,
                                mode='train', repeats=repeats))
            whole = measure(dict(kind='head_update', classes=classes, batch=2, size=64,
                                 dnc=True, learning=ALL_MECHANISMS, repeats=repeats))
            agree = same_assignment(classes, pixels)
            out.append(dict(classes=classes, batched=batched, loop=looped, head=head,
                            head_update=whole, same_assignment=agree))
            rows.append((classes, pixels, f"{batched['ms']:.1f}", f"{looped['ms']:.1f}",
                         f"{looped['ms'] / batched['ms']:.1f}x",
                         f"{100 * batched['ms'] / head['ms']:.1f}%", f'{100 * agree:.2f}%',
                         f"{whole['ms']:.1f}", f"{100 * whole['ms'] / head['ms']:.1f}%"))
        results['c_assign'] = out
        table('c. Assignment + update: batched head vs per-class loop (every class present); '
              "the head's whole assignment and update with every learning mechanism on",
              ['classes', 'pixels', 'batched (ms)', 'per-class loop (ms)', 'speed-up',
               'share of head train step', 'same assignment', 'head update, all mechanisms (ms)',
               'its share of head train step'], rows)

    if 'd' in args.sections:
        rows, out = [], []
        grid = [(150, b, s) for b, s in ((1, 32), (1, 64), (2, 64), (4, 64))] + \
            [(c, 2, 64) for c in (19, 50, 300)]
        if args.quick:
            grid = grid[:3]
        for classes, batch, size in grid:
            r = measure(dict(kind='head', classes=classes, batch=batch, size=size, dnc=True,
                             mode='train', repeats=repeats))
            n = batch * size * size
            out.append(dict(classes=classes, pixels=n, **r))
            rows.append((classes, n, f"{r['ms']:.0f}", f"{1e6 * r['ms'] / (n * classes):.2f}"))
        results['d_scaling'] = out
        table('d. Scaling of the DNC head training step', ['classes', 'pixels', 'ms',
                                                           'ns per pixel-class'], rows)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(results, f, indent=1)
    print(f'\nJSON: {args.out}')


if __name__ == '__main__':
    main()
