"""What importing ``mmseg_dnc`` changes outside its own names, and the opt-out.

Each change is named here once; the module that makes it asks
:func:`enabled` first. ``MMSEG_DNC_OPT_OUT`` (a comma-separated list of the
names below, or ``all``), set before the first import, leaves those parts of
mmengine, mmcv and mmseg as they are:

``checkpoint_loader``  mmengine's loader for local checkpoint files (every
                       library's): torch's weights-only unpickler with
                       mmengine's own objects allowed. Off, mmengine 0.10.7
                       cannot load its own checkpoints under torch >= 2.6.
``resume``             the checks of a resumed checkpoint, before mmengine
                       reads and acts on it (``Runner.resume`` stays wrapped,
                       to tell ``SafeCheckpointHook`` that a resume is under
                       way: it restores the random generators and the run id).
``inferencer``         ``BaseInferencer``: weights without a config (which
                       would execute the checkpoint's config text) refused.
``checkpoint_hook``    the ``CheckpointHook`` registry entry: atomic saves,
                       deletion only of the run's own files after a write.
                       The project's configs name ``SafeCheckpointHook``, so
                       they keep it either way.
``transforms``         mmseg's ``LoadImageFromFile`` and ``LoadAnnotations``
                       entries: subclasses that name a bad file. The project's
                       CamVid configs name ``CheckedLoadImageFromFile`` and
                       ``CheckedLoadAnnotations``, so they keep them either way.
``metrics``            mmseg's ``IoUMetric`` entry: a subclass that refuses
                       val/test label values outside the classes and the
                       ignore index (mmseg leaves them out of the metrics).
"""
import os
from typing import FrozenSet

NAMES = ('checkpoint_loader', 'resume', 'inferencer', 'checkpoint_hook', 'transforms',
         'metrics')
VARIABLE = 'MMSEG_DNC_OPT_OUT'


def opted_out(value: str = None) -> FrozenSet[str]:
    """The names that ``MMSEG_DNC_OPT_OUT`` (or ``value``) turns off.

    Raises:
        ValueError: for a name that is not one of :data:`NAMES`.
    """
    value = os.environ.get(VARIABLE, '') if value is None else value
    names = {name.strip() for name in value.split(',') if name.strip()}
    # checked even beside 'all': a misspelt name is a mistake either way
    unknown = sorted(names - set(NAMES) - {'all'})
    if unknown:
        raise ValueError(f'{VARIABLE}={value!r}: unknown {", ".join(unknown)}; the names are '
                         f'{", ".join(NAMES)} (comma-separated), or all.')
    return frozenset(NAMES) if 'all' in names else frozenset(names)


def enabled(name: str) -> bool:
    """Whether the change ``name`` is made (not opted out)."""
    assert name in NAMES, name
    return name not in opted_out()
