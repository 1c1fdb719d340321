"""Atomic file writes under their first name: they live in
:mod:`mmseg_dnc.checkpointing.fileio`."""
from .checkpointing.fileio import (PART_SUFFIX, AtomicLocalBackend, atomic_write,  # noqa: F401
                                   leftover_parts, save_atomic)

__all__ = ['PART_SUFFIX', 'AtomicLocalBackend', 'atomic_write', 'leftover_parts', 'save_atomic']
