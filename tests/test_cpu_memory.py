"""On a CPU the tools make glibc's malloc keep the memory a step frees for the
next step (mmseg_dnc.utils.cpu.keep_freed_memory): blocks of a training step's
sizes, freed and asked for again, take no fresh pages from the kernel."""
import os
import platform
import subprocess
import sys

import pytest

from mmseg_dnc.utils.cpu import MALLOC_ENV, keep_freed_memory
from .conftest import ROOT

# a fresh interpreter (malloc's state untouched by pytest's): 10 blocks of a
# training step's sizes (1-30 MiB) written, freed and asked for again, with
# glibc's settings; then kept, with new sizes (16-30 MiB); the page faults of
# each second round, and the 4 KiB pages of a round
ROUNDS = """
import resource, torch
from mmseg_dnc.utils.cpu import keep_freed_memory
def second_round_faults(sizes):
    def step():
        blocks = [torch.ones(s << 18) for s in sizes]
        del blocks
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, sum(sizes) << 8)
second_round_faults([(i * 7919) % 30 + 1 for i in range(10)])
assert keep_freed_memory()
second_round_faults([(i * 7919) % 15 + 16 for i in range(10)])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason="glibc's malloc only")
def test_freed_memory_is_kept_for_the_next_step():
    proc = subprocess.run([sys.executable, '-c', ROUNDS], cwd=ROOT, capture_output=True,
                          text=True, check=True, env=dict(os.environ, **{MALLOC_ENV: 'keep'}))
    (handed_back, pages), (kept, new_pages) = (map(int, line.split())
                                               for line in proc.stdout.splitlines())
    assert handed_back > pages // 2  # glibc's defaults: freed pages go back, and come again
    assert kept < new_pages // 100  # measured: 60,160 of 60,160, then 0 of 64,000


def test_the_setting_can_be_declined(monkeypatch):
    monkeypatch.setenv(MALLOC_ENV, 'glibc')
    assert keep_freed_memory() is False
    monkeypatch.setenv(MALLOC_ENV, 'off')
    with pytest.raises(ValueError, match='MMSEG_DNC_MALLOC=.off.: use keep .* or glibc'):
        keep_freed_memory()
