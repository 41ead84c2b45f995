"""glibc keeps a model call's large freed buffers in the heap once the thresholds are raised."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# Allocates and frees an 8 MiB block (a 512-token call's feed-forward activations are 3 MiB) in a
# fresh process and reports whether it was mmapped and how much free memory the heap top kept.
PROBE = """
import ctypes, json, sys
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "tuned":
    from models.heap_reuse import reuse_freed_heap_memory
    assert reuse_freed_heap_memory() and reuse_freed_heap_memory()
mmapped_before = libc.mallinfo2().hblks
block = libc.malloc(8 << 20)
mmapped = libc.mallinfo2().hblks - mmapped_before
libc.free(block)
print(json.dumps({"mmapped": mmapped, "kept": libc.mallinfo2().keepcost}))
"""


def _probe(mode: str) -> dict[str, int]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(completed.stdout)


def test_a_large_block_comes_from_the_heap_and_stays_there_once_tuned() -> None:
    untuned, tuned = _probe("untuned"), _probe("tuned")
    assert untuned["mmapped"] == 1 and untuned["kept"] < 8 << 20
    assert tuned["mmapped"] == 0 and tuned["kept"] >= 8 << 20
