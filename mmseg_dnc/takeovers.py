"""``MMSEG_DNC_OPT_OUT`` under its first name: what importing ``mmseg_dnc``
changes, and the opt-out, live in :mod:`mmseg_dnc.checkpointing.takeovers`."""
from .checkpointing.takeovers import NAMES, VARIABLE, enabled, opted_out  # noqa: F401

__all__ = ['NAMES', 'VARIABLE', 'enabled', 'opted_out']
