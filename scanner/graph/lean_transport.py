"""A small HTTP/1.1 keep-alive transport for httpx over asyncio streams, used for the Exchange admin API.

Why: the sweep sends two Exchange cmdlets per mailbox — its most numerous requests — and profiling showed httpcore's
per-request work (a pass over every pooled connection with a ``getpeername()`` syscall each, the pure-Python h11
state machine, stream wrappers) costing more client CPU than the cmdlets' JSON. This transport keeps what the scan
needs and nothing else: one request per connection at a time, keep-alive, ``Content-Length`` and chunked bodies,
TLS with the same CA bundle as httpx (certifi). Decoding (gzip/deflate), redirects, auth, cookies and proxies stay with
the ``httpx.AsyncClient`` in front of it (httpx mounts its own proxy transports for proxied URLs, so a configured
``HTTPS_PROXY`` never reaches this one).

Failures surface as httpx's own exceptions (``ConnectError``, ``ReadError``, ``RemoteProtocolError``, timeouts), so the
client's retry policy (``scanner.graph.client._Sender``) treats them exactly as before.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from dataclasses import dataclass

import httpx

_NO_BODY = frozenset({204, 304})


def decode_body(headers: httpx.Headers, content: bytes) -> bytes:
    """The body without its Content-Encoding (gzip / deflate), as ``httpx.Response.aread()`` would give it."""
    enc = headers.get("content-encoding", "").strip().lower()
    if not enc or enc == "identity" or not content:
        return content
    try:
        if enc in ("gzip", "x-gzip"):
            return zlib.decompress(content, 16 + zlib.MAX_WBITS)
        if enc == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise httpx.DecodingError(f"{enc} body could not be decoded: {exc}") from exc
    raise httpx.DecodingError(f"unsupported content-encoding {enc!r}")


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def usable(self) -> bool:
        # a keep-alive connection the server has closed since: its EOF has already been read by the loop
        return not (self.reader.at_eof() or self.writer.is_closing() or self.reader.exception() is not None)

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken socket has nothing left to report
            pass


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int = 16, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max = max_connections
        self._sem: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl = ssl_context
        self._closed = False

    async def _connect(self, scheme: str, host: str, port: int, timeout: float | None) -> _Conn:
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            ctx = self._ssl
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx, server_hostname=host if ctx else None,
                                        limit=1 << 20), timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(f"connect to {host}:{port} failed: {exc}") from exc
        return _Conn(reader, writer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        status, reason, headers, content = await self.send_raw(
            request.method, url.scheme, url.host, url.port, url.raw_path, request.headers.raw, body,
            connect_timeout=timeouts.get("connect"), read_timeout=timeouts.get("read"))
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content),
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason})

    async def post(self, url: httpx.URL, headers: list[tuple[bytes, bytes]], body: bytes, *,
                   timeout: float | None = None, connect_timeout: float | None = None
                   ) -> tuple[int, httpx.Headers, bytes]:
        """POST without httpx's client layer (no cookies, redirects, auth flows: the Exchange client needs none).
        Returns the status, headers and the *raw* body (still content-encoded; see :func:`decode_body`)."""
        hdrs = [(b"Host", url.netloc), (b"Content-Length", str(len(body)).encode()),
                (b"Accept-Encoding", b"gzip, deflate"), *headers]
        status, _reason, raw_headers, content = await self.send_raw(
            "POST", url.scheme, url.host, url.port, url.raw_path, hdrs, body,
            connect_timeout=connect_timeout, read_timeout=timeout)
        return status, httpx.Headers(raw_headers), content

    async def send_raw(self, method: str, scheme: str, host: str, port: int | None, target: bytes,
                       headers: list[tuple[bytes, bytes]], body: bytes, *, connect_timeout: float | None,
                       read_timeout: float | None) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        if self._closed:
            raise httpx.TransportError("transport closed")
        if self._sem is None:
            self._sem = asyncio.Semaphore(self._max)
        port = port or (443 if scheme == "https" else 80)
        key = (scheme, host, port)
        head = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        for k, v in headers:
            head += (k, b": ", v, b"\r\n")
        head.append(b"\r\n")
        data = b"".join(head) + body
        async with self._sem:
            idle = self._idle.setdefault(key, [])
            conn = None
            while idle:
                c = idle.pop()
                if c.usable():
                    conn = c
                    break
                c.close()
            if conn is None:
                conn = await self._connect(scheme, host, port, connect_timeout)
            try:
                status, reason, headers, content, keep = await asyncio.wait_for(
                    self._exchange(conn, data, method), read_timeout)
            except TimeoutError as exc:
                conn.close()
                raise httpx.ReadTimeout("response timed out") from exc
            except asyncio.IncompleteReadError as exc:
                conn.close()
                raise httpx.RemoteProtocolError("server disconnected without a complete response") from exc
            except (OSError, asyncio.LimitOverrunError, ValueError) as exc:
                conn.close()
                raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                conn.close()  # cancelled mid-response: the connection's state is unknown
                raise
            if keep and not self._closed:
                idle.append(conn)
            else:
                conn.close()
        return status, reason, headers, content

    async def _exchange(self, conn: _Conn, data: bytes, method: str
                        ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
        conn.writer.write(data)
        await conn.writer.drain()
        r = conn.reader
        while True:
            line = await r.readuntil(b"\r\n")
            parts = line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
                raise httpx.RemoteProtocolError(f"malformed status line {line[:40]!r}")
            status = int(parts[1])
            reason = parts[2].strip() if len(parts) > 2 else b""
            headers: list[tuple[bytes, bytes]] = []
            length: int | None = None
            chunked = False
            keep = parts[0] == b"HTTP/1.1"
            while True:
                h = await r.readuntil(b"\r\n")
                if h == b"\r\n":
                    break
                name, _, value = h.partition(b":")
                name, value = name.strip(), value.strip()
                headers.append((name, value))
                lname = name.lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif lname == b"connection":
                    v = value.lower()
                    keep = b"close" not in v and (keep or b"keep-alive" in v)
            if 100 <= status < 200:
                continue  # interim response (100 Continue): the real one follows
            break
        if method == "HEAD" or status in _NO_BODY:
            content = b""
        elif chunked:
            pieces = []
            while True:
                size_line = await r.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while await r.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    break
                pieces.append(await r.readexactly(size))
                await r.readexactly(2)
            content = b"".join(pieces)
        elif length is not None:
            content = await r.readexactly(length)
        else:
            content = await r.read()  # delimited by the connection's end
            keep = False
        return status, reason, headers, content, keep

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
