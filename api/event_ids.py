"""The ids of ``/v1/events``: a stream position, sealed so that it tells a client nothing else.

A position is, per partition of ``tidewire.notifications``, the offset of the next notification the
client has not seen. Shown in the clear it would tell a tenant how many notifications the other
tenants had between two of its own events. So an id is the position encrypted and authenticated
with AES-GCM (the ``cryptography`` package) under a key every API process of a deployment derives
from the same secret, with the tenant as associated data: only this API can read it, and only for
the tenant it was sent to. Each id has a random nonce, so two ids of one position differ.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from api.errors import ValidationFailedError

Positions = dict[int, int]

_NONCE_BYTES = 12
_KEY_CONTEXT = b"tidewire /v1/events ids, v1"
_MAX_OFFSET = 2**63 - 1
_NOT_OURS = (
    "header.last-event-id: not an id this API sent to this tenant (use the id of an event you received)"
)


class EventIdCodec:
    """Seals positions into ``/v1/events`` ids and opens them again."""

    def __init__(self, secret: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_CONTEXT).derive(secret)
        self._cipher = AESGCM(key)

    def encode(self, tenant_id: str, positions: Mapping[int, int]) -> str:
        """The id of ``positions`` for ``tenant_id``: URL-safe base64, no padding."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, pack_positions(positions), tenant_id.encode())
        return base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")

    def decode(self, tenant_id: str, event_id: str) -> Positions:
        """The positions of an id this codec sent to ``tenant_id``; :class:`ValidationFailedError`
        (422) for anything else: garbage, another tenant's id, an id sealed under another secret."""
        text = event_id.strip()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise ValidationFailedError(_NOT_OURS) from None
        if len(raw) <= _NONCE_BYTES:
            raise ValidationFailedError(_NOT_OURS)
        try:
            packed = self._cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], tenant_id.encode())
        except InvalidTag:
            raise ValidationFailedError(_NOT_OURS) from None
        return unpack_positions(packed)


def pack_positions(positions: Mapping[int, int]) -> bytes:
    """Each (partition, offset), by partition, as two unsigned LEB128 varints."""
    packed = bytearray()
    for partition, offset in sorted(positions.items()):
        if partition < 0 or not 0 <= offset <= _MAX_OFFSET:
            raise ValueError(f"not a position: partition {partition}, offset {offset}")
        _append_varint(packed, partition)
        _append_varint(packed, offset)
    return bytes(packed)


def unpack_positions(packed: bytes) -> Positions:
    """The inverse of :func:`pack_positions` (its input was authenticated, so it is well formed)."""
    numbers: list[int] = []
    value = shift = 0
    for byte in packed:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            numbers.append(value)
            value = shift = 0
    return dict(zip(numbers[0::2], numbers[1::2], strict=True))


def _append_varint(packed: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            packed.append(byte | 0x80)
        else:
            packed.append(byte)
            return
