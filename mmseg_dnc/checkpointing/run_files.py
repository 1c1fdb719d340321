"""Which checkpoint files a run wrote, so that it deletes only those.

mmengine's ``CheckpointHook`` deletes the files that the message hub names
(``keep_ckpt_ids`` beyond ``max_keep_ckpts``, the previous ``best_ckpt``), and
on ``--resume`` the message hub comes from the checkpoint: any checkpoint could
have it delete any file. This project's hook writes its run's id
(:data:`RUN_KEY`, 32 hex digits, kept across ``--resume``) into every
checkpoint, and deletes a file only when this process wrote it, or when it lies
in the run's checkpoint directory and carries the run's id. On ``--resume``
:func:`check_run_id` checks the id a checkpoint carries before the hook takes
it on (:mod:`.resume_checks`).
"""
import os.path as osp
import re
import uuid
from typing import Optional

from .loader import load_lazily
from .schema import describe, refuse

RUN_KEY = 'mmseg_dnc_run'
_HEX32 = re.compile(r'[0-9a-f]{32}')


def new_run_id() -> str:
    """A fresh run id: 32 hex digits."""
    return uuid.uuid4().hex


def check_run_id(run_id) -> None:
    """A checkpoint's :data:`RUN_KEY`: what :func:`new_run_id` makes.

    Raises:
        Refusal: it is not a string of 32 hex digits.
    """
    if not (isinstance(run_id, str) and _HEX32.fullmatch(run_id)):
        refuse(f'checkpoint[{RUN_KEY!r}]', f'must be 32 hex digits, got {describe(run_id)}')


def in_directory(path: str, directory: str) -> bool:
    """``path`` is a file directly inside ``directory`` (links resolved)."""
    return osp.dirname(osp.realpath(path)) == osp.realpath(directory)


def run_id_of(path: str) -> Optional[str]:
    """The run id that the checkpoint at ``path`` carries; None when it carries
    none or cannot be read (then it is not deleted). The file is mapped, not
    read, where it can be."""
    try:
        checkpoint = load_lazily(path)
    except Exception:  # noqa: BLE001  (unreadable: not provably ours, so kept)
        return None
    run_id = checkpoint.get(RUN_KEY) if isinstance(checkpoint, dict) else None
    return run_id if isinstance(run_id, str) else None
