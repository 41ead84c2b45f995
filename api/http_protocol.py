"""The HTTP/1.1 protocol the API is served with: uvicorn's httptools protocol, with a bound on the
request head.

httptools (a C parser) and uvloop cost the event loop about 15% less CPU per search than uvicorn's
pure-Python h11 parser on asyncio's loop (docs/benchmarks.md). But uvicorn's httptools protocol,
unlike its h11 one, puts no limit on a request's head: a client could make the process buffer an
endless header. :func:`bounded_httptools_protocol` adds the limit h11 had (``api.max_header_bytes``):
a head that grows past it is answered with 431 in the API's error shape, and the connection closed.
A request the parser rejects gets 400 in the same shape.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.errors import error_body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing request heads (request line and headers) longer than
    :attr:`max_head_bytes`. Use :func:`bounded_httptools_protocol` to set the bound."""

    max_head_bytes: int = 2 * 1024 * 1024

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        super().__init__(*arguments, **keywords)
        # Bytes received since the current request began, while its head is incomplete. Counted by
        # whole reads, so a read that also carries the start of the body may count in full: the bound
        # holds to within one read.
        self._head_bytes = 0
        self._reading_head = True

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse_long_head()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # A kept-alive connection's next request starts a new head.
        self._reading_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        """A request the parser rejects (a control character in a header, a malformed request line)
        gets the API's error shape too, not uvicorn's plain-text 400."""
        self._refuse(b"400 Bad Request", "bad_request", "not a valid HTTP/1.1 request")

    def _refuse_long_head(self) -> None:
        self.logger.warning("refused a request head of more than %d bytes", self.max_head_bytes)
        self._refuse(
            b"431 Request Header Fields Too Large",
            "request_header_fields_too_large",
            f"the request line and headers exceed {self.max_head_bytes} bytes",
        )

    def _refuse(self, status: bytes, code: str, message: str) -> None:
        """Answer ``status`` with the error document and close the connection."""
        body = json.dumps(error_body(code, message)).encode()
        self.transport.write(
            b"".join(
                (
                    b"HTTP/1.1 " + status + b"\r\n",
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                )
            )
        )
        self.transport.close()


def bounded_httptools_protocol(max_head_bytes: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to pass as uvicorn's ``http`` option, refusing heads over ``max_head_bytes``."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"max_head_bytes": max_head_bytes})
