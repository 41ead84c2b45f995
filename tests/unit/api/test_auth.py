"""API keys: format, hashing, header parsing."""

from __future__ import annotations

import time

from api.auth import KEY_LENGTH, bearer_token, generate_key, hash_key, parse_key


def test_generated_keys_are_distinct_well_formed_and_carry_their_lookup_id() -> None:
    keys = [generate_key() for _ in range(200)]
    assert len({key for _, key in keys}) == 200
    for key_id, key in keys:
        assert len(key) == KEY_LENGTH
        assert parse_key(key) == key_id


def test_stored_hash_depends_on_the_pepper_and_not_reveals_the_key() -> None:
    _, key = generate_key()
    plain, peppered = hash_key(key), hash_key(key, b"pepper")
    assert plain != peppered and len(plain) == 32
    assert key.encode() not in plain
    assert hash_key(key) == plain


def test_malformed_keys_are_rejected_without_a_lookup_id() -> None:
    _, key = generate_key()
    for bad in ("", "tw_", key[:-1], key + "x", key.replace("tw_", "tx_"), "tw_" + "z" * (KEY_LENGTH - 3)):
        assert parse_key(bad) is None


def test_a_one_megabyte_key_is_rejected_in_constant_time() -> None:
    huge = "tw_" + "a" * 1_000_000
    started = time.perf_counter()
    assert parse_key(huge) is None
    assert time.perf_counter() - started < 0.01


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token(None) is None
