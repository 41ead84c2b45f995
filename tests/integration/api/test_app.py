"""What the app's lifespan does to the process it runs in."""

from __future__ import annotations

import gc

from tests.integration.api.conftest import ApiFactory


def test_the_objects_built_at_start_are_kept_out_of_the_collectors_reach(api_factory: ApiFactory) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with api_factory():
        # The app, its schemas and the model session's Python side: tens of thousands of objects.
        assert gc.get_freeze_count() > 10_000
