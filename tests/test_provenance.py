"""Paths and pixel indices that a checkpoint or case base names are untrusted
data: the rules of mmseg_dnc.models.provenance, by hand."""
import os

import numpy as np
import pytest
import torch

from mmseg_dnc.models.provenance import (META_KEY, UntrustedSourceError,
                                         check_case_base_indices, check_pixel,
                                         check_source_table, compact_sources, resolve_image,
                                         source_paths)


@pytest.fixture
def root(tmp_path):
    """A data root with one image, and a secret file beside it (outside)."""
    data = tmp_path / 'data'
    (data / 'train').mkdir(parents=True)
    (data / 'train' / 'a.png').write_bytes(b'png')
    (tmp_path / 'secret.png').write_bytes(b'secret')
    return data


def test_a_file_of_the_data_root_is_accepted_relative_or_as_written(root, monkeypatch):
    real = os.path.realpath(root / 'train' / 'a.png')
    assert resolve_image('train/a.png', str(root), 'ckpt', 'e') == real
    assert resolve_image(str(root / 'train' / 'a.png'), str(root), 'ckpt', 'e') == real
    monkeypatch.chdir(root.parent)  # mmseg's img_path: data root joined, relative to the cwd
    assert resolve_image('data/train/a.png', 'data', 'ckpt', 'e') == real


@pytest.mark.parametrize('path', ['{tmp}/secret.png', '../secret.png', 'train/../../secret.png',
                                  'train/link.png'])
def test_files_outside_the_data_root_are_refused(root, path):
    os.symlink(root.parent / 'secret.png', root / 'train' / 'link.png')
    path = path.format(tmp=root.parent)
    with pytest.raises(UntrustedSourceError, match='outside the data root') as error:
        resolve_image(path, str(root), 'checkpoint evil.pth', "meta['dnc_pixel_sources'][3]")
    assert 'evil.pth' in str(error.value) and "[3]" in str(error.value)


@pytest.mark.parametrize('path', ['http://127.0.0.1:9/x.png', 'https://example.com/a.png',
                                  'file:///etc/passwd', 's3://bucket/a.png', 'data:image/png,'])
def test_urls_and_schemes_are_refused_before_any_lookup(root, path):
    with pytest.raises(UntrustedSourceError, match='URL or other scheme'):
        resolve_image(path, str(root), 'ckpt', 'e')
    with pytest.raises(UntrustedSourceError, match='URL or other scheme'):
        source_paths({'meta': {META_KEY: ['train/a.png', path]}})


def test_special_and_huge_files_are_refused_without_reading_them(root):
    os.mkfifo(root / 'train' / 'fifo.png')  # reading it would hang
    with pytest.raises(UntrustedSourceError, match='not a regular file'):
        resolve_image('train/fifo.png', str(root), 'ckpt', 'e')
    with open(root / 'train' / 'huge.png', 'wb') as f:  # sparse: no disk used
        f.truncate(65 * 2**20)
    with pytest.raises(UntrustedSourceError, match='over the 67108864 bytes'):
        resolve_image('train/huge.png', str(root), 'ckpt', 'e')
    (root / 'train' / 'folder.png').mkdir()
    with pytest.raises(UntrustedSourceError, match='not a regular file'):
        resolve_image('train/folder.png', str(root), 'ckpt', 'e')


def test_a_missing_file_or_root_says_pass_data_root(root):
    with pytest.raises(UntrustedSourceError, match='--data-root'):
        resolve_image('train/b.png', str(root), 'ckpt', 'e')
    with pytest.raises(UntrustedSourceError, match='--data-root'):
        resolve_image('train/a.png', str(root / 'nowhere'), 'ckpt', 'e')


def test_sources_meta_must_be_a_list_of_paths():
    assert source_paths({'meta': {}}) is None
    assert source_paths({}) is None
    for bad in ('a.png', [1], ['a\x00b.png'], ['']):
        with pytest.raises(UntrustedSourceError, match='dnc_pixel_sources'):
            source_paths({'meta': {META_KEY: bad}}, origin='ckpt')


def test_source_table_rows_are_pixels_of_listed_images_or_all_minus_one():
    ok = torch.tensor([[[0, 5, 7], [-1, -1, -1]], [[1, 0, 0], [0, 359, 479]]])  # (2, 2, 3)
    check_source_table(ok, (2, 2), num_images=2)
    check_source_table(ok, (2, 2))  # the list not at hand: no upper bound
    cases = {
        'image 2 of 2 listed': (ok.clone().index_put_((torch.tensor(1), torch.tensor(0),
                                                       torch.tensor(0)), torch.tensor(2)),
                                r'\[1, 0\]'),
        'negative y': (torch.tensor([[[0, -3, 1]]]), r'\[0, 0\]'),
        'half missing': (torch.tensor([[[-1, 4, 4]]]), r'\[0, 0\]'),
        'image below -1': (torch.tensor([[[-2, 0, 0]]]), r'\[0, 0\]'),
    }
    for name, (table, where) in cases.items():
        shape = table.shape[:2]
        with pytest.raises(UntrustedSourceError, match=where):
            check_source_table(table, shape, num_images=2, origin=name)
    with pytest.raises(UntrustedSourceError, match=r'is \(2, 2, 3\); this model'):
        check_source_table(ok, (2, 3))
    with pytest.raises(UntrustedSourceError, match='not an integer tensor'):
        check_source_table(ok.float(), (2, 2))


def test_case_base_indices_point_into_its_paths():
    image = torch.tensor([[[0, 1], [-1, 0]]])  # (T=1, C=2, K=2)
    y = x = torch.zeros_like(image)
    good = dict(image_paths=['a.png', 'b.png'], image=image, y=y, x=x)
    check_case_base_indices(good, 'cb')
    with pytest.raises(UntrustedSourceError, match=r'entry \(0, 0, 1\).*image 1'):
        check_case_base_indices(dict(good, image_paths=['a.png']), 'cb')
    with pytest.raises(UntrustedSourceError, match=r'entry \(0, 1, 1\)'):
        check_case_base_indices(dict(good, y=torch.tensor([[[0, 0], [0, -4]]])), 'cb')
    with pytest.raises(UntrustedSourceError, match='image_paths'):
        check_case_base_indices(dict(good, image_paths='a.png'), 'cb')


def test_a_pixel_outside_its_image_is_refused():
    check_pixel((360, 480, 3), 359, 479, 'a.png')
    for y, x in ((360, 0), (0, 480), (-1, 3)):
        with pytest.raises(UntrustedSourceError, match=f'pixel \\({y}, {x}\\) of a.png'):
            check_pixel((360, 480, 3), y, x, 'a.png')


def test_compact_sources_by_hand():
    # class 0: k0 is image 7 (5, 6), k1 not a pixel; class 1: k0 image 3, k1 image 7
    source = torch.tensor([[[7, 5, 6], [9, 9, 9]], [[3, 1, 2], [7, 0, 4]]])
    has = torch.tensor([[True, False], [True, True]])
    rows, paths = compact_sources(source, has, lambda i: f'img{i}.png')
    assert paths == ['img3.png', 'img7.png']  # the used images, by index
    assert rows.tolist() == [[[1, 5, 6], [-1, -1, -1]], [[0, 1, 2], [1, 0, 4]]]
    check_source_table(rows, (2, 2), num_images=len(paths))
    empty, none = compact_sources(source, torch.zeros(2, 2, dtype=torch.bool), str)
    assert none == [] and bool((empty == -1).all())
    assert np.array_equal(rows.numpy().shape, (2, 2, 3))
