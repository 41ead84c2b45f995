"""A TCP proxy in front of Postgres that counts round trips on the wire.

Every query cycle of the PostgreSQL protocol (simple query, or extended query up to a Sync) ends
with one ReadyForQuery ('Z') message from the server, so counting them counts round trips, no
matter what the client library does internally. The first 'Z' of each connection ends its
start-up (authentication), which a pool may do in the background at any time: it is not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct


class RoundTripCounter:
    """Listens on 127.0.0.1 (an ephemeral port), forwards to Postgres, counts ReadyForQuery messages."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.ready_for_query = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RoundTripCounter:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        for task in (
            asyncio.create_task(self._pipe(client_reader, server_writer)),
            asyncio.create_task(self._server_to_client(server_reader, client_writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _server_to_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Server messages always carry a type byte and a length: parse them to find 'Z'.
        started = False
        try:
            while True:
                header = await reader.readexactly(5)
                message_type, length = header[:1], struct.unpack("!I", header[1:])[0]
                body = await reader.readexactly(length - 4)
                if message_type == b"Z":
                    if started:
                        self.ready_for_query += 1
                    started = True
                writer.write(header + body)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
