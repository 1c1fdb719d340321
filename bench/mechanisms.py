"""The sub-centroid learning mechanisms, as DNCDecodeHead keys: one source for
the ablation (bench/camvid_ablation.py) and the cost bench (bench/dnc_cost.py)."""

MECHANISMS = {
    'kmeans++ start': dict(subcentroid_init='kmeans++'),
    'momentum warm-up': dict(momentum_warmup=True),
    'starved classes learn': dict(update_from='correct_or_all'),
    'dead restart': dict(restart_dead_below=0.1, restart_dead_every=50),
}
# every mechanism on: the ablation's 'combined'
ALL_MECHANISMS = {key: value for keys in MECHANISMS.values() for key, value in keys.items()}
