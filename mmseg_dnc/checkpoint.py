"""The weights-only checkpoint loader under its first name: it lives in
:mod:`mmseg_dnc.checkpointing.loader` (see :mod:`mmseg_dnc.checkpointing`)."""
from .checkpointing.loader import (SAFE_GLOBALS, CorruptCheckpointError,  # noqa: F401
                                   MalformedCheckpointError, UntrustedCheckpointError,
                                   load_checkpoint_file, state_dict_of)

__all__ = ['SAFE_GLOBALS', 'CorruptCheckpointError', 'MalformedCheckpointError',
           'UntrustedCheckpointError', 'load_checkpoint_file', 'state_dict_of']
