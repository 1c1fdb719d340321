"""DNC on mmseg's model zoo: every decode head in mmseg's registry, in mmseg's
own model for it (CPU-sized), trains one step and predicts on real CamVid
crops with DNC swapped in, or is refused at build with the reason."""
import re

import pytest

from mmseg_dnc.compat import HAS_FULL_MMCV
from mmseg_dnc.models.build_checks import NOT_CLS_SEG
from mmseg_dnc.zoo import ZOO, check_head, decode_heads_in_registry
from mmseg_dnc.zoo.check import NEEDS_MMCV, REFUSED, TRAINS
from .conftest import CAMVID, ROOT

# their decoders build compiled mmcv.ops (CrissCrossAttention, PSAMask)
COMPILED_OPS = {'CCHead', 'PSAHead'}
# written out here, not read from the code's table: mask classification, a
# point head, a boundary head, a depth head
REFUSED_HEADS = {'IterativeDecodeHead', 'Mask2FormerHead', 'MaskFormerHead', 'PointHead',
                 'STDCHead', 'SegmenterMaskTransformerHead', 'SideAdapterCLIPHead',
                 'VPDDepthHead'}


def test_the_refusal_table_is_the_expected_one():
    # KernelUpdateHead is K-Net's kernel update, refused through IterativeDecodeHead
    assert set(NOT_CLS_SEG) == REFUSED_HEADS | {'KernelUpdateHead'}


def expected_status(head: str, full_mmcv: bool) -> str:
    if head in REFUSED_HEADS:
        return REFUSED
    return NEEDS_MMCV if head in COMPILED_OPS and not full_mmcv else TRAINS


def test_the_zoo_covers_every_decode_head_in_the_registry():
    assert set(ZOO) == set(decode_heads_in_registry())
    assert {'DepthwiseSeparableASPPHead', 'SegformerHead', 'LightHamHead',
            'OCRHead'} <= set(ZOO)


@pytest.mark.parametrize('head', sorted(ZOO))
def test_head_trains_with_dnc_or_is_refused_with_the_reason(head):
    result = check_head(head, CAMVID)
    assert result.status == expected_status(head, HAS_FULL_MMCV), result
    if result.status == REFUSED:
        assert result.detail.startswith(f'{head} is ') and len(result.detail) > 40
    if result.status == NEEDS_MMCV:
        assert result.detail.startswith('mmcv.ops.')


def test_readme_shows_the_table():
    """README's table, generated on mmcv-lite by tools/dnc_zoo_check.py, says
    what the test above finds for every head."""
    readme = open(f'{ROOT}/README.md').read()
    rows = dict(re.findall(r'^\| `(\w+)` \| `mmseg::[^`]+` \| ([a-z ]+) \|', readme, re.M))
    assert rows == {head: expected_status(head, full_mmcv=False) for head in ZOO}
