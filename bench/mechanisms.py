"""The sub-centroid learning mechanisms, as DNCDecodeHead keys: one source for
the ablation (bench/camvid_ablation.py) and the cost bench (bench/dnc_cost.py).

Every variant spells out the whole learning setting (REFERENCE, then the
mechanism's keys), so a record means the same thing whatever the head's
defaults are."""

# the paper's settings
REFERENCE = dict(num_subcentroids=10, subcentroid_init='random', momentum_warmup=False,
                 update_from='correct', restart_dead_below=0.0)

MECHANISMS = {
    'kmeans++ start': dict(subcentroid_init='kmeans++'),
    'momentum warm-up': dict(momentum_warmup=True),
    'starved classes learn': dict(update_from='correct_or_all'),
    'dead restart': dict(restart_dead_below=0.1, restart_dead_every=50),
}
# every mechanism on: the ablation's 'combined'
ALL_MECHANISMS = {key: value for keys in MECHANISMS.values() for key, value in keys.items()}


def with_reference(keys: dict) -> dict:
    """The reference setting with ``keys`` changed."""
    return {**REFERENCE, **keys}
