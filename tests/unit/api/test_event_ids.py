"""The ids of /v1/events: positions only this API can read, and only for the tenant it sent them to."""

from __future__ import annotations

import base64

import pytest

from api.errors import ValidationFailedError
from api.event_ids import EventIdCodec, pack_positions, unpack_positions

POSITIONS = {0: 42, 1: 17, 5: 2**63 - 1, 11: 0}


def test_an_id_opens_to_its_positions_for_its_tenant() -> None:
    ids = EventIdCodec(b"secret")
    assert ids.decode("acme", ids.encode("acme", POSITIONS)) == POSITIONS
    assert ids.decode("acme", ids.encode("acme", {})) == {}


def test_an_id_shows_no_offsets_and_two_ids_of_one_position_differ() -> None:
    ids = EventIdCodec(b"secret")
    first, second = ids.encode("acme", {0: 42, 1: 17}), ids.encode("acme", {0: 42, 1: 17})
    assert first != second
    for event_id in (first, second):
        assert "42" not in event_id and ":" not in event_id and "," not in event_id
        assert event_id.isascii() and len(event_id) < 100


@pytest.mark.parametrize(
    "case",
    [
        "another tenant",
        "another secret",
        "one character changed",
        "cut short",
        "garbage",
        "old clear-text form",
    ],
)
def test_an_id_not_sent_to_this_tenant_by_this_api_is_a_422(case: str) -> None:
    ids = EventIdCodec(b"secret")
    sent = ids.encode("acme", POSITIONS)
    raw = bytearray(base64.urlsafe_b64decode(sent + "=" * (-len(sent) % 4)))
    raw[-1] ^= 1
    presented, codec, tenant = {
        "another tenant": (sent, ids, "globex"),
        "another secret": (sent, EventIdCodec(b"rotated"), "acme"),
        "one character changed": (base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("="), ids, "acme"),
        "cut short": (sent[:16], ids, "acme"),
        "garbage": ("!!not base64 é\x00", ids, "acme"),
        "old clear-text form": ("0:42,1:17", ids, "acme"),
    }[case]
    with pytest.raises(ValidationFailedError, match="not an id this API sent to this tenant"):
        codec.decode(tenant, presented)


def test_positions_pack_into_varints_and_back() -> None:
    assert unpack_positions(pack_positions(POSITIONS)) == POSITIONS
    assert pack_positions({0: 1, 1: 300}) == bytes([0, 1, 1, 0xAC, 0x02])
    with pytest.raises(ValueError):
        pack_positions({0: -1})
