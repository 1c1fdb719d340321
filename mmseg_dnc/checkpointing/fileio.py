"""Files that are either written whole or not at all.

A process killed while it writes (a node lost, a job out of time, a full disk)
leaves a file cut short. Writing to a hidden ``.part`` file beside the target,
flushing it to disk and renaming it over the target (atomic on POSIX) means a
reader sees the old file or the new one, never half of the new one.
"""
import io
import os
import os.path as osp
import uuid
from typing import Any, Union

import torch
from mmengine.fileio import LocalBackend, register_backend

PART_SUFFIX = '.part'


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, str],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen half-written.

    The bytes go to ``.<name>.<pid>.<random>.part`` in the same directory,
    are fsynced, and the file is renamed over ``path``. If the process dies
    before the rename, ``path`` keeps its previous content (or stays absent)
    and the ``.part`` file is left behind.
    """
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode(encoding)
    part = osp.join(directory, f'.{osp.basename(path)}.{os.getpid()}.'
                               f'{uuid.uuid4().hex[:8]}{PART_SUFFIX}')
    try:
        with open(part, 'xb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, path)
    except BaseException:
        if osp.exists(part):
            os.unlink(part)
        raise
    try:  # make the rename itself durable; not every file system allows it
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(obj: Any, path: Union[str, os.PathLike]) -> None:
    """``torch.save(obj, path)``, written whole or not at all."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, buffer.getvalue())


def leftover_parts(directory: str) -> list:
    """The ``.part`` files of interrupted writes in ``directory``, sorted."""
    if not osp.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory)
                  if name.startswith('.') and name.endswith(PART_SUFFIX))


@register_backend('local_atomic')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with ``put`` and ``put_text`` atomic."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write(filepath, obj, encoding)
