#!/usr/bin/env python3
"""Opens N Server-Sent Event streams to one URL and keeps them open, idle.

Usage: idle_streams.py HOST:PORT PATH TOKEN N

Prints "open N" once every stream has answered 200 with its headers, then
holds them until killed; exits 1 when a stream is refused or closed early
(and says which and why).
"""

import asyncio
import sys


async def open_stream(host, port, path, token):
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
         f"Authorization: Bearer {token}\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"answered {head.decode(errors='replace').splitlines()[0]}")
    return reader, writer


async def main():
    address, path, token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    host, port = address.rsplit(":", 1)
    streams = []
    # A few at a time, as clients would arrive.
    for start in range(0, n, 50):
        batch = [open_stream(host, int(port), path, token) for _ in range(start, min(n, start + 50))]
        streams += await asyncio.gather(*batch)
    print(f"open {len(streams)}", flush=True)

    async def watch(i, reader):
        # Idle streams may carry events; an end of stream is a failure.
        while await reader.read(4096):
            pass
        raise RuntimeError(f"stream {i} closed by the server")

    await asyncio.gather(*(watch(i, r) for i, (r, _) in enumerate(streams)))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - report and fail
        print(f"idle_streams: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
