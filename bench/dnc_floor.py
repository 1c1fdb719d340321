"""The arithmetic floor of DNC's extra training time on the main job's model
(issue 23): the operations DNC's math needs in every training step, each timed
alone at the model's shapes, against the 1x1 conv's.

The main job trains on 4 crops of 240x320; SegFormer's decoder classifies at
stride 4 (N = 4 x 60 x 80 = 19,200 pixels), D = 128, C = 11 classes, K = 10
sub-centroids; PPC scores the labelled rows (M, about half the pixels; 9,532 in
the profiled step). Counted once each, with no recomputation: the C*K scores
and their gradient to the embeddings, the max over K, the embedding's
LayerNorm and L2 normalisation (forward only), PPC's scores, log-softmax and
gradient; less the 1x1 conv's scores, their gradient and its weight's gradient.
Left out: the embedding's
and the max's backward, the LayerNorm over class scores, the Sinkhorn
assignment, the momentum update, PPD and every gather, so DNC's real extra
time is above this floor. Median of ``--repeats`` calls each, freed memory kept as the tools
keep it (``keep_freed_memory``). Run it alone.

    python bench/dnc_floor.py [--labelled 9532] [--repeats 30]
"""
import argparse
import json
import os.path as osp
import time

import torch
import torch.nn.functional as F

from mmseg_dnc.utils.cpu import keep_freed_memory

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the twin's training step, median of 31 paired steps (docs/cost.md, section b)
STEP = osp.join(ROOT, 'bench', 'results', 'dnc_cost_camvid_keep_memory.json')


def median_ms(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--labelled', type=int, default=9532, help='PPC rows (M)')
    parser.add_argument('--repeats', type=int, default=30)
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    N, D, C, K, M = 4 * 60 * 80, 128, 11, 10, args.labelled
    emb, subcentroids, conv = torch.randn(N, D), torch.randn(C * K, D), torch.randn(C, D)
    grad_scores, grad_logits = torch.randn(N, C * K), torch.randn(N, C)
    rows, grad_rows = torch.randn(M, D), torch.randn(M, C * K)
    r = args.repeats
    dnc = {
        f'C*K scores, {N} x {D} x {C * K}': median_ms(lambda: emb @ subcentroids.t(), r),
        'their gradient to the embeddings': median_ms(lambda: grad_scores @ subcentroids, r),
        'max over K': median_ms(lambda: grad_scores.view(N, C, K).amax(-1), r),
        'embedding: LayerNorm over D, L2 (forward)':
            median_ms(lambda: F.normalize(F.layer_norm(emb, (D,)), dim=-1), r),
        f'PPC scores, {M} x {D} x {C * K}': median_ms(lambda: rows @ subcentroids.t(), r),
        'PPC log-softmax over C*K': median_ms(lambda: grad_rows.log_softmax(-1), r),
        'PPC gradient to the embeddings': median_ms(lambda: grad_rows @ subcentroids, r),
    }
    twin = {
        f'1x1 conv scores, {N} x {D} x {C}': median_ms(lambda: emb @ conv.t(), r),
        'their gradient to the features': median_ms(lambda: grad_logits @ conv, r),
        'the weight gradient (DNC has none: momentum moves its sub-centroids)':
            median_ms(lambda: grad_logits.t() @ emb, r),
    }
    with open(STEP) as f:
        step = json.load(f)['b_model'][0]['train']
    floor = sum(dnc.values()) - sum(twin.values())
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{torch.backends.cpu.get_cpu_capability()}\n')
    print('| operation | ms |\n|---|---:|')
    for name, ms in dnc.items():
        print(f'| DNC: {name} | {ms:.2f} |')
    for name, ms in twin.items():
        print(f'| twin: {name} | -{ms:.2f} |')
    print(f'| **DNC over the twin, at least** | **{floor:.1f}** |')
    print(f"\nThe twin's training step: {step['twin_ms']:.0f} ms (section b). The floor alone "
          f"puts DNC at {(step['twin_ms'] + floor) / step['twin_ms']:.3f}x; measured: "
          f"{step['ratio']:.3f}x ({step['dnc_ms'] - step['twin_ms']:.0f} ms over).")


if __name__ == '__main__':
    main()
