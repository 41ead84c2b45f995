import pytest

from tidewire.database import changed_definition
from tidewire.errors import StorageError

BASE = "BEGIN\n  a := 1;\n  b := 2;\nEND\n"


def test_changed_definition_makes_every_replacement_in_order() -> None:
    changes = (("  a := 1;\n", "  a := 10;  -- 0099\n"), ("a := 10", "a := 11"))

    assert changed_definition(BASE, changes, base="0098", revision="0099") == (
        "BEGIN\n  a := 11;  -- 0099\n  b := 2;\nEND\n"
    )


@pytest.mark.parametrize("old", ["  c := 3;\n", ":= "], ids=["missing", "more than once"])
def test_changed_definition_refuses_a_definition_it_was_not_written_for(old: str) -> None:
    with pytest.raises(StorageError, match="migration 0098's definition is not the one 0099 changes"):
        changed_definition(BASE, ((old, "x"),), base="0098", revision="0099")
