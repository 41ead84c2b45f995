"""What opening a worker's resources does to the process it runs in."""

from __future__ import annotations

import asyncio
import gc

from streams.app import create_app
from streams.context import StreamContext
from tidewire.runtime.stack import LocalStack
from tidewire.settings import Settings


def test_opening_the_resources_keeps_what_the_worker_built_out_of_the_collectors_reach(
    local_stack: LocalStack, settings: Settings
) -> None:
    async def open_and_close() -> int:
        context = StreamContext(settings)
        app = create_app(settings, context=context)
        try:
            await context.open(app)
            return gc.get_freeze_count()
        finally:
            await context.close()

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    # The Faust app, its agents and the model session's Python side: tens of thousands of objects.
    assert asyncio.run(open_and_close()) > 10_000
