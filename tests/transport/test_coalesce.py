"""The HTTPS listener's transport: one write per loop iteration, nothing lost on close."""

from __future__ import annotations

import asyncio

from webhook.transport.coalesce import CoalescingTransport


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.events.append("write")

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


def test_head_and_body_leave_in_one_write() -> None:
    inner = Recording()

    async def respond() -> list[bytes]:
        transport = CoalescingTransport(inner, loop=asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(memoryview(b"{}"))
        assert transport.get_write_buffer_size() == 40
        during = list(inner.writes)
        await asyncio.sleep(0)
        return during

    assert asyncio.run(respond()) == []
    assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_close_sends_what_is_pending_first() -> None:
    inner = Recording()

    async def respond_and_close() -> None:
        transport = CoalescingTransport(inner, loop=asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\r\n")
        transport.close()
        await asyncio.sleep(0)

    asyncio.run(respond_and_close())
    assert inner.events == ["write", "close"]


def test_nothing_is_written_to_a_closing_transport() -> None:
    inner = Recording()

    async def write_after_the_peer_left() -> None:
        transport = CoalescingTransport(inner, loop=asyncio.get_running_loop())
        transport.write(b"late")
        inner.closing = True
        await asyncio.sleep(0)
        assert transport.is_closing()

    asyncio.run(write_after_the_peer_left())
    assert inner.writes == []
