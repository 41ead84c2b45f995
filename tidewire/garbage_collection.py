"""Keeping what a long-running process builds at start out of the cyclic garbage collector's reach."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Move every object alive now out of the cyclic garbage collector's reach; call it once the
    process has built what it keeps until it ends (an app and its schemas, a model session...).

    Otherwise each full collection walks all of them with the event loop stopped. In the read API
    under search load that was up to 110 ms at a time, and it set the search p99; frozen, a full
    collection took 12-14 ms. Objects frozen here are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
