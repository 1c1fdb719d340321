"""Which real training pixel a sub-centroid is, and how that is read safely.

A classifier snapped to real pixels (``SnapSubcentroidsHook``, or
``tools/snap_subcentroids.py --replace``) carries its provenance:

- ``state_dict['decode_head.subcentroid_source']`` (C, K, 3) int64: (image,
  y, x) of each sub-centroid's pixel at the image's original size, all -1
  where a sub-centroid is not a pixel;
- ``meta['dnc_pixel_sources']``: the image paths, indexed by ``image``.

A case base file (``CKPT.casebase.pth``) holds the same kind of thing:
``image_paths`` and ``image``/``y``/``x`` (T, C, K).

Both arrive in files a user may have been sent, so they are untrusted data:
a path in them is never opened as given. :func:`resolve_image` accepts only
a regular file of at most :data:`MAX_IMAGE_BYTES` inside the data root (after
resolving symlinks: no absolute path elsewhere, no ``../``, no link out), and
refuses URLs and other schemes; indices are checked against the list and the
image they name. Every refusal is an :class:`UntrustedSourceError` naming the
file, the entry and what to do.

Shape legend: T pixels shown per sub-centroid, C classes, K sub-centroids.
"""
import os
import os.path as osp
import re
import stat
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

META_KEY = 'dnc_pixel_sources'
STATE_KEY = 'decode_head.subcentroid_source'
# a training image is a few MB; anything far larger is not one
MAX_IMAGE_BYTES = 64 * 2**20
_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.\-]*:')  # http:, s3:, file:, data:, ...


class UntrustedSourceError(ValueError):
    """A checkpoint or case base names a pixel source that is refused."""


def _refuse(origin: str, entry: str, why: str, fix: str) -> UntrustedSourceError:
    return UntrustedSourceError(f'{origin}: {entry} {why}. {fix}')


_NOT_OURS = ('The file was not written by this project or was altered; do not use it '
             '(re-run tools/snap_subcentroids.py on a checkpoint you trust).')


def check_sources_meta(value, origin: str = 'checkpoint') -> List[str]:
    """``meta['dnc_pixel_sources']`` (untrusted): a list of plain relative or
    absolute file paths; URLs, other schemes and NUL bytes are refused here,
    before anything is resolved."""
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise _refuse(origin, f"meta['{META_KEY}']",
                      f'is {type(value).__name__}, not a list of image paths', _NOT_OURS)
    for i, path in enumerate(value):
        check_path_text(path, origin, f"meta['{META_KEY}'][{i}]")
    return value


def check_path_text(path: str, origin: str, entry: str) -> None:
    """A path's text: non-empty, no NUL, no scheme (``http://``, ``file:``...)."""
    if not path or '\x00' in path:
        raise _refuse(origin, entry, f'is not a file path ({path!r})', _NOT_OURS)
    if _SCHEME.match(path):
        raise _refuse(origin, entry, f'names {path!r}, a URL or other scheme: only image '
                      'files of the data root are read', _NOT_OURS)


def source_paths(checkpoint: dict, origin: str = 'checkpoint') -> Optional[List[str]]:
    """The image paths behind ``subcentroid_source`` in a loaded checkpoint,
    checked as text (:func:`check_sources_meta`); None when its sub-centroids
    were never snapped."""
    meta = checkpoint.get('meta') or {}
    value = meta.get(META_KEY) if isinstance(meta, dict) else None
    return None if value is None else check_sources_meta(value, origin)


def check_source_table(source: Tensor, shape: Sequence[int], num_images: Optional[int] = None,
                       origin: str = 'checkpoint', entry: str = STATE_KEY) -> None:
    """``subcentroid_source`` (C, K, 3): an integer tensor of ``shape`` (C, K)
    + (3,), each row (image, y, x) with image in [0, num_images) and y, x >=
    0, or all -1 (no pixel). ``num_images`` None: the list is not at hand."""
    if not isinstance(source, Tensor) or source.dtype not in (
            torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise _refuse(origin, entry, f'is {getattr(source, "dtype", type(source).__name__)}, '
                      'not an integer tensor of (image, y, x) rows', _NOT_OURS)
    want = tuple(shape) + (3,)
    if tuple(source.shape) != want:
        raise _refuse(origin, entry, f'is {tuple(source.shape)}; this model\'s sub-centroids '
                      f'need {want} (classes, K, (image, y, x))', _NOT_OURS)
    rows = source.long().view(-1, 3)
    none = rows[:, 0] == -1
    bad = (none & (rows != -1).any(dim=1)) | (~none & ((rows[:, 0] < 0) | (rows[:, 1:] < 0)
                                                      .any(dim=1)))
    if num_images is not None:
        bad |= rows[:, 0] >= num_images
    if bad.any():
        c, k = divmod(int(bad.nonzero()[0, 0]), int(source.shape[1]))
        listed = '' if num_images is None else f' ({num_images} images listed)'
        raise _refuse(origin, f'{entry}[{c}, {k}]',
                      f'is {rows[c * source.shape[1] + k].tolist()}: not an (image, y, x) of a '
                      f'listed image{listed}, nor -1 for none', _NOT_OURS)


def check_case_base_indices(case_base: dict, origin: str) -> None:
    """A case base's ``image`` (T, C, K) indices point into its
    ``image_paths`` (or are -1), and ``y``, ``x`` are >= 0 where they do."""
    paths = case_base.get('image_paths')
    if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
        raise _refuse(origin, "'image_paths'", 'is not a list of image paths', _NOT_OURS)
    image, y, x = (case_base.get(k) for k in ('image', 'y', 'x'))
    if not all(isinstance(t, Tensor) for t in (image, y, x)) or not (
            image.shape == y.shape == x.shape):
        raise _refuse(origin, "'image', 'y', 'x'", 'are not three tensors of one shape',
                      _NOT_OURS)
    found = image >= 0
    bad = (image < -1) | (image >= len(paths)) | (found & ((y < 0) | (x < 0)))
    if bad.any():
        at = tuple(bad.nonzero()[0].tolist())
        raise _refuse(origin, f'entry {at}', f'names image {int(image[at])} at ({int(y[at])}, '
                      f'{int(x[at])}): outside its {len(paths)} images', _NOT_OURS)


def resolve_image(path: str, data_root: str, origin: str, entry: str,
                  max_bytes: int = MAX_IMAGE_BYTES) -> str:
    """The real path of the image a checkpoint names, or a refusal.

    ``path`` is tried relative to ``data_root``, then as written (mmseg
    records ``img_path`` joined with the data root of its day); the first
    that exists inside ``data_root`` after resolving symlinks is taken, and
    must be a regular file of at most ``max_bytes``.
    """
    check_path_text(path, origin, entry)
    if not data_root or not osp.isdir(data_root):
        raise _refuse(origin, entry, f'names {path!r}, and the data root {data_root!r} to '
                      'look for it in is not a folder',
                      'Pass --data-root (the dataset the checkpoint was trained on).')
    root = osp.realpath(data_root)
    candidates = ([] if osp.isabs(path) else [osp.join(root, path)]) + [path]
    outside = None
    for candidate in candidates:
        if not osp.lexists(candidate):
            continue
        real = osp.realpath(candidate)
        if osp.commonpath([real, root]) != root:
            outside = real
            continue
        try:
            info = os.stat(real)
        except OSError as error:
            raise _refuse(origin, entry, f'names {path!r}, which cannot be read ({error})',
                          'Check the data root.') from None
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(origin, entry, f'names {path!r} ({real}), which is not a regular '
                          'file', _NOT_OURS)
        if info.st_size > max_bytes:
            raise _refuse(origin, entry, f'names {path!r} ({real}), {info.st_size} bytes: '
                          f'over the {max_bytes} bytes an image may have', _NOT_OURS)
        return real
    if outside is not None:
        raise _refuse(origin, entry, f'names {path!r}, which is {outside}: outside the data '
                      f'root {root} (after resolving symlinks); only the dataset\'s own files '
                      'are read', f'{_NOT_OURS} If the dataset moved, pass --data-root.')
    raise _refuse(origin, entry, f'names {path!r}, which is not in the data root {root}',
                  'Pass --data-root: the folder of the dataset the checkpoint was trained on.')


def resolve_images(paths: Sequence[str], data_root: str, origin: str,
                   key: str = 'image_paths') -> List[str]:
    """:func:`resolve_image` for each path of a list."""
    return [resolve_image(p, data_root, origin, f'{key}[{i}]') for i, p in enumerate(paths)]


def check_pixel(image_shape: Sequence[int], y: int, x: int, path: str) -> None:
    """(y, x) must lie inside the image it names."""
    h, w = image_shape[:2]
    if not (0 <= y < h and 0 <= x < w):
        raise UntrustedSourceError(
            f'pixel ({y}, {x}) of {path} is outside the image ({h}x{w}): the case base or '
            f'checkpoint that names it is not this dataset\'s. {_NOT_OURS}')


def compact_sources(source: Tensor, has: Tensor, path_of) -> Tuple[Tensor, List[str]]:
    """The provenance to save for sub-centroids that are real pixels.

    Args:
        source (Tensor): (C, K, 3) (image, y, x), image an index that
            ``path_of`` maps to a path.
        has (Tensor): (C, K) bool, the sub-centroids that are a pixel.
        path_of (callable): image index -> path.

    Returns:
        ``subcentroid_source`` (C, K, 3) int64 with image indices into the
        returned list of the images used (in index order), -1 rows where not
        ``has``; and that list (``meta['dnc_pixel_sources']``).
    """
    has = has.bool().cpu()
    source = source.long().cpu()
    used = sorted(set(source[..., 0][has].tolist()))
    compact = {i: n for n, i in enumerate(used)}
    out = torch.full(source.shape, -1, dtype=torch.long)
    if has.any():
        rows = source[has].clone()
        rows[:, 0] = torch.tensor([compact[i] for i in rows[:, 0].tolist()], dtype=torch.long)
        out[has] = rows
    return out, [path_of(i) for i in used]
