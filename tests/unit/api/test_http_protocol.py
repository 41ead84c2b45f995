"""The API's HTTP protocol (api/http_protocol.py): httptools with a bound on the request head, on a
real uvicorn server and raw sockets, so that what a client sends byte by byte is what is tested."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from api.http_protocol import bounded_httptools_protocol
from tests.unit.api.support import read_response, serve_in_thread, unfinished_head

LIMIT = 16_384


async def echo_sizes(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the size of the request's headers and body, as the app saw them."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
    answer = json.dumps({"header_bytes": header_bytes, "body_bytes": len(body)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with serve_in_thread(echo_sizes, http=bounded_httptools_protocol(LIMIT), loop="auto") as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


def get_with_header(size: int) -> bytes:
    """A GET whose head is about ``size`` bytes, most of them one header's value."""
    return b"GET / HTTP/1.1\r\nhost: test\r\nx-filler: " + b"f" * size + b"\r\n\r\n"


def test_a_head_within_the_bound_reaches_the_app(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(get_with_header(LIMIT - 200))
        status, _, body = read_response(connection)
    assert status == 200
    assert json.loads(body)["header_bytes"] > LIMIT - 200


def test_a_head_past_the_bound_gets_431_in_the_error_shape_and_the_connection_closes(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(unfinished_head(LIMIT + 1))
        status, headers, body = read_response(connection)
        assert connection.recv(1) == b""  # closed by the server
    assert status == 431
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"


def test_a_long_head_sent_in_small_pieces_is_counted_across_reads(address: tuple[str, int]) -> None:
    head = unfinished_head(LIMIT + 1)
    with socket.create_connection(address, timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(head), 1_000):
            connection.sendall(head[start : start + 1_000])
            time.sleep(0.002)  # separate reads on the server's side
        status, _, _ = read_response(connection)
    assert status == 431


def test_each_request_of_a_kept_alive_connection_has_its_own_bound(address: tuple[str, int]) -> None:
    """Heads under the bound one by one, over it together: every request is answered."""
    with socket.create_connection(address, timeout=10) as connection:
        for _ in range(3):
            connection.sendall(get_with_header(LIMIT * 3 // 4))
            status, _, _ = read_response(connection)
            assert status == 200


def test_body_bytes_do_not_count_against_the_head(address: tuple[str, int]) -> None:
    body = b"b" * (LIMIT * 4)
    request = b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
    with socket.create_connection(address, timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.sendall(request)
        for start in range(0, len(body), 4_096):
            connection.sendall(body[start : start + 4_096])
            time.sleep(0.002)  # separate reads on the server's side
        status, _, answer = read_response(connection)
    assert status == 200
    assert json.loads(answer)["body_bytes"] == len(body)


def test_a_request_the_parser_rejects_gets_400_in_the_error_shape(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nhost: test\r\nx-control: a\x7fb\r\n\r\n")
        status, headers, body = read_response(connection)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "bad_request"
