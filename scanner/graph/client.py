"""Raw-JSON access to Microsoft Graph (through the msgraph-sdk pipeline) and to the Exchange admin REST API.

Why not the typed SDK models: kiota deserialisation costs ~24 ms CPU per request here (sdk-notes.md), so bulk reads use
the SDK's request adapter (authentication provider, middleware) with a native response handler, and we parse the bytes
ourselves. ``$batch`` sub-responses are parsed the same way (``client.batch.post()`` loses JSON bodies, kiota #737).

Retries are ours, not the SDK's RetryHandler: it rejects fractional ``Retry-After`` values (Microsoft's own sample is
``2.128``), does not retry throttled requests inside ``$batch``, and sleeps for every caller at once. Here a 429 blocks
only its throttle scope (one mailbox, the directory, the reports API), so one mailbox's 429 never slows the others.

Nothing in this module knows whether it talks to Microsoft or to the simulator: the base URLs are the only switch.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

_log = logging.getLogger("m365sweep.exchange")

MAX_BATCH = 20
OUTLOOK_PER_POST = 16  # Outlook sub-requests per $batch POST: Graph runs them 4 at a time (see _pack)
RETRY_STATUSES = frozenset({429, 503, 504})
THROTTLE_BUDGET_S = 600.0  # total Retry-After one request may wait before its 429 becomes a coverage gap
THROTTLE_MAX_RETRIES = 40
# Cmdlets per Exchange admin API $batch: what CIPP's New-ExoBulkRequest sends in production (Microsoft publishes no
# limit for this endpoint).
EXCHANGE_BATCH = 10


class ApiError(Exception):
    """A Graph or Exchange call that failed for good (after retries). Carries the service's error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        service: str = "graph",
        path: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.service = service
        self.path = path
        self.request_id = request_id

    @property
    def is_permission(self) -> bool:
        return self.status == 403 or (self.code or "") in {"Authorization_RequestDenied", "ErrorAccessDenied"}

    @property
    def is_auth(self) -> bool:
        return self.status == 401

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_no_mailbox(self) -> bool:
        # Both codes mean "no Exchange Online mailbox" (graph-api.md §1.3); the same user may return either.
        return self.status == 404 and (self.code or "") in {"MailboxNotEnabledForRESTAPI", "ResourceNotFound"}

    def short(self) -> str:
        parts = [f"{self.service} {self.status or ''}".strip()]
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"


@dataclass
class Stats:
    """Counters for benchmarks and the scan summary."""

    http_requests: int = 0
    logical_requests: int = 0
    throttled: int = 0
    retries: int = 0
    server_errors: int = 0
    by_service: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Logical requests by throttle class ("directory", "reports", "outlook", "exchange"): the request mix the
    # benchmark's floor is computed from.
    by_class: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Per-user reads an incremental scan did not make (proved unchanged since the last scan), by kind.
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Seconds requests spent in flight, summed per service: divided by the collect phase's wall time it is the mean
    # number of requests in flight (how full the pipe was; benchmarks).
    busy_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Optional hook (benchmarks): called with (method, url, scope) for every logical Graph request.
    observer: Any = None

    def count(self, method: str, url: str, scope: str) -> None:
        self.by_class["outlook" if scope.startswith("mailbox:") else scope] += 1
        if self.observer is not None:
            self.observer(method, url, scope)


class ScopeGate:
    """Per-throttle-scope pause: a 429 on scope S delays only later requests of scope S."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def block(self, scope: str, seconds: float) -> None:
        until = time.monotonic() + max(0.0, seconds)
        if until > self._until.get(scope, 0.0):
            self._until[scope] = until

    def blocked(self, scope: str) -> bool:
        return self._until.get(scope, 0.0) > time.monotonic()

    async def wait(self, scope: str) -> None:
        while True:
            delay = self._until.get(scope, 0.0) - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(delay)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: integer, fractional ("2.128"), "N,M" or an HTTP date."""
    if value is None:
        return None
    text = str(value).strip().split(",")[0].strip()
    if not text:
        return None
    try:
        seconds = float(text)
        if math.isnan(seconds) or seconds < 0:
            return None
        return min(seconds, 300.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), 300.0))


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    return min(cap, base * (2 ** (attempt - 1))) * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


def loads(data: bytes | str) -> Any:
    """JSON parse: orjson (~5x faster than ``json`` on Graph pages), falling back to ``json`` for what orjson refuses
    (integers beyond 64 bits, NaN) so a strange-but-valid body never becomes an error here."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _error_from_body(status: int, body: bytes, service: str, path: str, headers: Mapping[str, str]) -> ApiError:
    code = None
    message = f"HTTP {status}"
    request_id = headers.get("request-id")
    if body and not body.startswith(b"\x00"):
        try:
            data = loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            code = err.get("code") if isinstance(err.get("code"), str) else None
            message = str(err.get("message") or message)
            # Exchange: the useful text is error.details[*].message after the last '|' (graph-api.md §3.2).
            details = err.get("details")
            if isinstance(details, list) and details:
                texts = [str(d.get("message", "")).rsplit("|", 1)[-1] for d in details if isinstance(d, dict)]
                texts = [t for t in texts if t]
                if texts:
                    message = "; ".join(texts)
            inner = err.get("innerError") or err.get("innererror")
            if isinstance(inner, dict) and not request_id:
                request_id = inner.get("request-id")
    elif status == 403 and service == "exchange":
        # A 403 with a NUL-byte body: the cmdlet is unknown or the app lacks Exchange.ManageAsApp.
        message = "access denied or cmdlet not available"
    return ApiError(message[:500], status=status, code=code, service=service, path=path, request_id=request_id)


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return loads(self.body) if self.body else None


@dataclass
class BatchItem:
    id: str
    url: str  # relative to the version root, e.g. "/users/{id}/mailFolders/inbox/messageRules"
    method: str = "GET"
    headers: Mapping[str, str] | None = None
    body: Any = None
    scope: str = "directory"  # throttle scope for this sub-request (e.g. "mailbox:<id>")


@dataclass
class BatchResult:
    id: str
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON (or None)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self, path: str = "") -> ApiError:
        code = None
        message = f"HTTP {self.status}"
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            message = str(self.body["error"].get("message") or message)
        return ApiError(message[:500], status=self.status, code=code, service="graph", path=path)


class _Sender:
    """Retry loop shared by both services: scope gates, bounded concurrency, Retry-After, transport faults."""

    def __init__(self, *, service: str, max_in_flight: int, max_retries: int, stats: Stats, gate: ScopeGate,
                 on_auth_failure: Any = None) -> None:
        self.service = service
        self.on_auth_failure = on_auth_failure
        self.sem = asyncio.Semaphore(max_in_flight)
        self.max_retries = max_retries
        self.stats = stats
        self.gate = gate
        self.scope_sems: dict[str, asyncio.Semaphore] = {}

    def _scope_sem(self, scope: str) -> asyncio.Semaphore | None:
        # Outlook allows 4 concurrent requests per app and mailbox (graph-api.md §9.2): stay under it.
        if not scope.startswith("mailbox:"):
            return None
        sem = self.scope_sems.get(scope)
        if sem is None:
            sem = self.scope_sems[scope] = asyncio.Semaphore(4)
        return sem

    async def run(self, send, *, scope: str, path: str) -> Response:  # type: ignore[no-untyped-def]
        attempt = 0
        auth_retried = False
        throttled = 0
        throttle_waited = 0.0
        while True:
            attempt += 1
            await self.gate.wait(scope)
            scope_sem = self._scope_sem(scope)
            try:
                if scope_sem is not None:
                    await scope_sem.acquire()
                try:
                    async with self.sem:
                        self.stats.http_requests += 1
                        self.stats.by_service[self.service] += 1
                        sent = time.monotonic()
                        try:
                            resp = await send()
                        finally:
                            self.stats.busy_seconds[self.service] += time.monotonic() - sent
                finally:
                    if scope_sem is not None:
                        scope_sem.release()
            except (httpx.TransportError, httpx.StreamError) as exc:
                if attempt > self.max_retries:
                    raise ApiError(
                        f"connection failed: {type(exc).__name__}", code="transport_error", service=self.service,
                        path=path,
                    ) from None
                self.stats.retries += 1
                await asyncio.sleep(backoff(attempt))
                continue
            if resp.status in RETRY_STATUSES:
                wait = parse_retry_after(resp.headers.get("Retry-After"))
                if resp.status == 429:
                    self.stats.throttled += 1
                    # Throttling is not failure: wait as told and retry (graph-api.md §9.1), within a time budget
                    # rather than a count — a reports API allowing 5 requests / 10 s answers "Retry-After: 1" many
                    # times in a row. A count cap still ends an endless "Retry-After: 0" storm.
                    throttled += 1
                    if wait is None:
                        wait = backoff(throttled)
                    throttle_waited += wait
                    attempt -= 1  # the 5xx / transport retry count is kept for real failures
                    if throttled > max(self.max_retries, THROTTLE_MAX_RETRIES) or \
                            throttle_waited > THROTTLE_BUDGET_S:
                        raise _error_from_body(resp.status, resp.body, self.service, path, resp.headers)
                else:
                    self.stats.server_errors += 1
                    if attempt > self.max_retries:
                        raise _error_from_body(resp.status, resp.body, self.service, path, resp.headers)
                if wait is None:
                    wait = backoff(attempt)
                self.stats.retries += 1
                if resp.status == 429:
                    self.gate.block(scope, wait)
                    continue
                await asyncio.sleep(wait)
                continue
            if resp.status == 401 and not auth_retried:
                # An expired or revoked token mid-scan: the credential hands out a fresh one on the next call.
                auth_retried = True
                self.stats.retries += 1
                if self.on_auth_failure is not None:
                    self.on_auth_failure()
                continue
            return resp


def _decode_json(resp: Response, service: str, path: str) -> Any:
    if not resp.body:
        return None
    try:
        return loads(resp.body)
    except ValueError:
        raise ApiError("malformed JSON in response", status=resp.status, code="malformed_response", service=service,
                       path=path) from None


class GraphApi:
    """Raw-JSON Microsoft Graph v1.0 access over the msgraph-sdk request adapter."""

    def __init__(
        self,
        adapter: Any,
        base_url: str,
        *,
        max_in_flight: int = 16,
        max_retries: int = 6,
        stats: Stats | None = None,
        gate: ScopeGate | None = None,
    ) -> None:
        self.adapter = adapter
        self.base_url = base_url.rstrip("/")
        self.stats = stats or Stats()
        self.gate = gate or ScopeGate()
        self._sender = _Sender(service="graph", max_in_flight=max_in_flight, max_retries=max_retries,
                               stats=self.stats, gate=self.gate)
        # False once the service answered POST /$batch with 404, 405 or 501 (a gateway or a Graph-compatible service
        # without JSON batching): the same sub-requests then go out one by one, still concurrently and throttled per
        # scope, instead of every chunk failing.
        self.batch_supported = True

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            url = path
        else:
            url = f"{self.base_url}/{path.lstrip('/')}"
        if params:
            query = urlencode({k: v for k, v in params.items() if v is not None}, safe="$,'()/: ")
            url = f"{url}{'&' if '?' in url else '?'}{query}"
        return url

    async def _send_once(self, method: str, url: str, headers: Mapping[str, str] | None, body: Any) -> Response:
        from kiota_abstractions.method import Method
        from kiota_abstractions.native_response_handler import NativeResponseHandler
        from kiota_abstractions.request_information import RequestInformation
        from kiota_http.middleware.options import ResponseHandlerOption

        ri = RequestInformation()
        ri.http_method = Method[method.upper()]
        ri.url = url
        ri.headers.try_add("Accept", "application/json")
        for k, v in (headers or {}).items():
            ri.headers.try_add(k, v)
        if body is not None:
            ri.headers.try_add("Content-Type", "application/json")
            ri.content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
        ri.add_request_options([ResponseHandlerOption(NativeResponseHandler())])
        raw: httpx.Response = await self.adapter.send_primitive_async(ri, "bytes", None)
        return Response(raw.status_code, raw.headers, raw.content)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        scope: str = "directory",
    ) -> Response:
        url = self.url(path, params)
        self.stats.logical_requests += 1
        self.stats.count(method, url, scope)
        resp = await self._sender.run(lambda: self._send_once(method, url, headers, body), scope=scope, path=path)
        if resp.status >= 400:
            raise _error_from_body(resp.status, resp.body, "graph", _strip(path), resp.headers)
        return resp

    async def get_json(self, path: str, *, params: Mapping[str, Any] | None = None,
                       headers: Mapping[str, str] | None = None, scope: str = "directory") -> Any:
        attempt = 0
        while True:
            resp = await self.request("GET", path, params=params, headers=headers, scope=scope)
            try:
                return _decode_json(resp, "graph", _strip(path))
            except ApiError:
                # A 200 whose body is cut or garbled (a proxy, a connection dropped mid-body): a GET is safe to
                # repeat, and one bad page must not end a listing (the user list, a tenant-wide report).
                attempt += 1
                if attempt > self._sender.max_retries:
                    raise
                self.stats.retries += 1
                await asyncio.sleep(backoff(attempt))

    async def post_json(self, path: str, body: Any, *, scope: str = "directory") -> Any:
        resp = await self.request("POST", path, body=body, scope=scope)
        return _decode_json(resp, "graph", _strip(path))

    async def patch_json(self, path: str, body: Any, *, scope: str = "directory") -> Any:
        resp = await self.request("PATCH", path, body=body, scope=scope)
        return _decode_json(resp, "graph", _strip(path))

    async def delete(self, path: str, *, scope: str = "directory") -> None:
        await self.request("DELETE", path, scope=scope)

    async def iter_pages(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        scope: str = "directory",
        max_pages: int = 100_000,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Each page's ``value`` list, following ``@odata.nextLink`` verbatim (headers re-sent on every page)."""
        url: str | None = self.url(path, params)
        seen: set[str] = set()
        pages = 0
        while url:
            if url in seen:
                raise ApiError("the service returned a paging link that loops", code="paging_loop", path=_strip(path))
            seen.add(url)
            pages += 1
            if pages > max_pages:
                raise ApiError(f"more than {max_pages} pages", code="paging_limit", path=_strip(path))
            data = await self.get_json(url, headers=headers, scope=scope)
            if not isinstance(data, dict) or not isinstance(data.get("value", []), list):
                raise ApiError("unexpected response shape (no 'value' list)", code="malformed_response",
                               path=_strip(path))
            yield [v for v in data.get("value", []) if isinstance(v, dict)]
            nxt = data.get("@odata.nextLink")
            url = nxt if isinstance(nxt, str) and nxt else None

    async def get_all(self, path: str, **kw: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for page in self.iter_pages(path, **kw):
            out.extend(page)
        return out

    async def batch(self, items: Sequence[BatchItem], *, max_rounds: int = 8) -> dict[str, BatchResult]:
        """POST /$batch (≤ 20 per call), retrying throttled or failed sub-requests after their own Retry-After.

        The POSTs of one round go out concurrently (the client's in-flight limit bounds them): sending them one after
        another made a chunk of 80 sub-requests cost four batch round trips of latency instead of one.
        """
        results: dict[str, BatchResult] = {}
        auth_retried: set[str] = set()
        # Per sub-request: failed rounds (5xx, no answer) count against max_rounds; throttled ones (429) against the
        # single path's throttle allowance, as throttling is not failure (a tenant's directory RU budget answers
        # 429 to many rounds in a row on a big sweep).
        tries: dict[str, int] = defaultdict(int)
        throttles: dict[str, int] = defaultdict(int)
        pending = list(items)
        self.stats.logical_requests += len(items)
        for i in items:
            self.stats.count(i.method, i.url, i.scope)
        rounds = 0
        while pending:
            rounds += 1
            # Sub-requests whose scope is open go out now, packed 20 a POST; those of a throttled scope (a mailbox
            # that answered 429) go in POSTs of their own that wait for that scope only — one mailbox's Retry-After
            # never holds back the other mailboxes' sub-requests.
            ready = [i for i in pending if not self.gate.blocked(i.scope)]
            waiting: dict[str, list[BatchItem]] = {}
            for i in pending:
                if self.gate.blocked(i.scope):
                    waiting.setdefault(i.scope, []).append(i)
            chunks = _pack(ready)
            for group in waiting.values():
                chunks.extend(_pack(group))
            outcomes = await asyncio.gather(*(self._batch_post(c, rounds, max_rounds, auth_retried, tries, throttles)
                                              for c in chunks),
                                            return_exceptions=True)
            pending = []
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
                done, retry = outcome
                results.update(done)
                pending.extend(retry)
        return results

    async def _batch_post(self, chunk: list[BatchItem], rounds: int, max_rounds: int, auth_retried: set[str],
                          tries: dict[str, int], throttles: dict[str, int],
                          ) -> tuple[dict[str, BatchResult], list[BatchItem]]:
        # Wait for the scopes of this chunk (a throttled mailbox delays only its own sub-requests).
        for scope in {i.scope for i in chunk}:
            await self.gate.wait(scope)
        if not self.batch_supported:
            return await self._one_by_one(chunk), []
        body = {"requests": [_batch_json(i) for i in chunk]}
        resp = await self._sender.run(lambda b=body: self._send_once("POST", self.url("/$batch"), None, b),
                                      scope="batch", path="/$batch")
        if resp.status in BATCH_UNSUPPORTED:
            self.batch_supported = False
            return await self._one_by_one(chunk), []
        if resp.status >= 400:
            raise _error_from_body(resp.status, resp.body, "graph", "/$batch", resp.headers)
        data = _decode_json(resp, "graph", "/$batch")
        answers = {}
        if isinstance(data, dict) and isinstance(data.get("responses"), list):
            for r in data["responses"]:
                if isinstance(r, dict) and "id" in r:
                    answers[str(r["id"])] = r
        results: dict[str, BatchResult] = {}
        retry: list[BatchItem] = []
        exhausted = {"error": {"code": "retries_exhausted", "message": "no answer after retries"}}
        for item in chunk:
            r = answers.get(item.id)
            if r is None:
                tries[item.id] += 1
                if tries[item.id] >= max_rounds:
                    results[item.id] = BatchResult(item.id, 503, {}, exhausted)
                else:
                    retry.append(item)
                continue
            status = int(r.get("status") or 0)
            raw_headers = r.get("headers")
            # Header names are case-insensitive (RFC 9110): "retry-after" and "Retry-After" are the same header.
            headers = httpx.Headers({str(k): str(v) for k, v in raw_headers.items()}
                                    if isinstance(raw_headers, dict) else {})
            rbody = r.get("body")
            if isinstance(rbody, str) and headers.get("Content-Type", "").lower().startswith("application/json"):
                try:
                    rbody = loads(rbody)
                except ValueError:
                    rbody = None
            if status == 429:
                self.stats.throttled += 1
                throttles[item.id] += 1
            elif status in RETRY_STATUSES:
                tries[item.id] += 1
            if status in RETRY_STATUSES and (throttles[item.id] <= max(max_rounds, THROTTLE_MAX_RETRIES)
                                             if status == 429 else tries[item.id] < max_rounds):
                wait = parse_retry_after(headers.get("Retry-After"))
                self.stats.retries += 1
                self.gate.block(item.scope, wait if wait is not None else backoff(rounds))
                retry.append(item)
                continue
            if status == 401 and item.id not in auth_retried:
                # The token expired while the batch ran: the next round's POST carries a fresh one (once).
                auth_retried.add(item.id)
                self.stats.retries += 1
                retry.append(item)
                continue
            results[item.id] = BatchResult(item.id, status, headers, rbody)
        return results, retry


    async def _one_by_one(self, chunk: list[BatchItem]) -> dict[str, BatchResult]:
        """The chunk's sub-requests as individual requests (no $batch): same results, each throttled on its own scope."""

        async def one(item: BatchItem) -> tuple[str, BatchResult]:
            url = self.url(item.url)
            try:
                resp = await self._sender.run(lambda: self._send_once(item.method, url, item.headers, item.body),
                                              scope=item.scope, path=_strip(item.url))
            except ApiError as exc:  # retries exhausted: the same answer a batch gives after its rounds
                return item.id, BatchResult(item.id, exc.status or 503, {}, {"error": {
                    "code": exc.code or "retries_exhausted", "message": str(exc)}})
            try:
                body = resp.json()
            except ValueError:
                body = None
            return item.id, BatchResult(item.id, resp.status, resp.headers, body)

        return dict(await asyncio.gather(*(one(i) for i in chunk)))


BATCH_UNSUPPORTED = frozenset({404, 405, 501})


def _pack(items: list[BatchItem]) -> list[list[BatchItem]]:
    """Items in POSTs of ≤ 20, never splitting one mailbox's sub-requests across POSTs (when they fit in one).

    Graph hands Outlook 4 sub-requests of a batch at a time, so one POST never exceeds a mailbox's 4-concurrent
    limit; the same mailbox spread over two POSTs in flight together could (graph-api.md §9.2-9.3). For the same
    reason a POST takes at most OUTLOOK_PER_POST (16, four rounds of 4) Outlook sub-requests: a fifth round for the
    last few would add a whole round trip, while directory sub-requests, not held to 4 at a time, fill the rest.
    """
    groups: dict[str, list[BatchItem]] = {}
    loose: list[BatchItem] = []
    for item in items:
        if item.scope.startswith("mailbox:"):
            groups.setdefault(item.scope, []).append(item)
        else:
            loose.append(item)
    posts: list[list[BatchItem]] = []
    current: list[BatchItem] = []
    for group in groups.values():
        for i in range(0, len(group), OUTLOOK_PER_POST):
            part = group[i:i + OUTLOOK_PER_POST]
            if len(current) + len(part) > OUTLOOK_PER_POST:
                posts.append(current)
                current = []
            current.extend(part)
    if current:
        posts.append(current)
    # Directory sub-requests have no per-scope concurrency limit: they fill the gaps, then POSTs of their own.
    for post in posts:
        while loose and len(post) < MAX_BATCH:
            post.append(loose.pop())
    loose.reverse()
    posts.extend(loose[i:i + MAX_BATCH] for i in range(0, len(loose), MAX_BATCH))
    return posts


def _batch_json(item: BatchItem) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.id, "method": item.method, "url": item.url}
    headers = dict(item.headers or {})
    if item.body is not None:
        headers.setdefault("Content-Type", "application/json")
        out["body"] = item.body
    if headers:
        out["headers"] = headers
    return out


def _strip(path: str) -> str:
    """A path without scheme/host/query, for error messages (never leaks tokens; URLs carry none)."""
    parts = urlsplit(path)
    return parts.path or path


# "By default, only the first 1000 items are returned. Use the ResultSize parameter ..." (Exchange's own wording, also
# when a service ignores ResultSize): the answer is a prefix of the result, not the result.
_TRUNCATION_WARNING = re.compile(r"only the first \d+ items|ResultSize|more results|results? (?:was|were|are) truncated",
                                 re.IGNORECASE)


def _check_warnings(data: Mapping[str, Any], cmdlet: str, *, has_next: bool,
                    warned: set[tuple[str, str]] | None = None) -> None:
    """``@adminapi.warnings`` of an InvokeCommand answer (graph-api.md §3.2): a read the service says it cut short, with
    no next page to follow, is an error (a gap), never a silently shorter list; other warnings are logged."""
    warnings = data.get("@adminapi.warnings")
    if not isinstance(warnings, list) or not warnings:
        return
    texts = [str(w)[:300] for w in warnings if w]
    if not texts:
        return
    if cmdlet.startswith("Get-") and not has_next and any(_TRUNCATION_WARNING.search(t) for t in texts):
        raise ApiError(f"the service returned only part of the result: {texts[0]}", code="truncated",
                       service="exchange", path=cmdlet)
    key = (cmdlet, texts[0][:120])
    if warned is not None:
        # ``warned``: what this connection (one scan) has logged — the same warning for each of 100k mailboxes is
        # logged once, not 100k times; a later scan (the scheduler's next night) logs it again.
        if key in warned:
            _log.debug("Exchange %s warned: %s", cmdlet, " | ".join(texts))
            return
        if len(warned) < 500:
            warned.add(key)
    _log.warning("Exchange %s warned: %s", cmdlet, " | ".join(texts))


class ExchangeApi:
    """The Exchange Online admin REST endpoint (``InvokeCommand``), which ExchangeOnlineManagement v3 uses."""

    def __init__(
        self,
        client: httpx.AsyncClient | Sequence[httpx.AsyncClient],
        base_url: str,
        tenant_id: str,
        token_provider: Any,
        *,
        max_in_flight: int = 8,
        max_retries: int = 6,
        stats: Stats | None = None,
        gate: ScopeGate | None = None,
        page_size: int = 1000,
        lean: Any = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        batch: bool = True,
    ) -> None:
        # ``lean`` (a scanner.graph.lean_transport.LeanTransport): POST straight through it, skipping httpx's client
        # layer (cookies, redirects, auth flows, URL merging) — the Exchange cmdlets are the sweep's most numerous
        # requests and need none of it. Otherwise:
        # Several small connection pools instead of one big one: httpcore checks every pooled connection on every
        # request (has_expired → a getpeername() syscall each), so CPU per request grows with the pool size
        # (sdk-notes.md: keep ~8-16 in flight per client). Each request goes to the least busy client.
        self.clients = [client] if isinstance(client, httpx.AsyncClient) else list(client)
        self.client = self.clients[0]
        self._busy = [0] * len(self.clients)
        self.base_url = base_url.rstrip("/")
        self.tenant_id = tenant_id
        self.token_provider = token_provider  # async () -> str
        self.page_size = page_size
        self.lean = lean
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.stats = stats or Stats()
        self.gate = gate or ScopeGate()
        self._sender = _Sender(service="exchange", max_in_flight=max_in_flight, max_retries=max_retries,
                               stats=self.stats, gate=self.gate,
                               on_auth_failure=getattr(token_provider, "invalidate", None))
        self._urls: dict[str, httpx.URL] = {}
        self._warned: set[tuple[str, str]] = set()  # Exchange warnings already logged by this connection
        self._anchor = f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant_id}"
        # JSON batching of reads (invoke_many): None = not tried yet, True = the service answered a batch, False =
        # off ([scan] exchange_batch = false) or refused by the service (then cmdlets go one at a time).
        self._batch_ok: bool | None = None if batch else False
        self._probe = asyncio.Lock()

    @property
    def invoke_url(self) -> str:
        return f"{self.base_url}/adminapi/beta/{self.tenant_id}/InvokeCommand"

    def _url(self, url: str) -> httpx.URL:
        """Parsed once: httpx validates a URL character by character, and every cmdlet POSTs to the same one (two per
        mailbox). Paging links differ per page, so the cache is kept small."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 64:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    async def _post(self, url: str, body: dict[str, Any]) -> Response:
        token = await self.token_provider()
        if self.lean is not None:
            return await self._post_lean(url, token, body)
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-AnchorMailbox": self._anchor,
            "Prefer": f"odata.maxpagesize={self.page_size}",
        }
        k = min(range(len(self.clients)), key=self._busy.__getitem__)
        client = self.clients[k]
        self._busy[k] += 1
        try:
            req = client.build_request("POST", self._url(url),
                                       content=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), headers=headers)
            return await self._read(await client.send(req, stream=True))
        finally:
            self._busy[k] -= 1

    async def _post_lean(self, url: str, token: str, body: dict[str, Any]) -> Response:
        from scanner.graph.lean_transport import decode_body

        headers = [(b"Authorization", f"Bearer {token}".encode()), (b"Content-Type", b"application/json"),
                   (b"Accept", b"application/json"), (b"X-AnchorMailbox", self._anchor.encode()),
                   (b"Prefer", f"odata.maxpagesize={self.page_size}".encode())]
        status, hdrs, content = await self.lean.post(
            self._url(url), headers, orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
            timeout=self.timeout, connect_timeout=self.connect_timeout)
        # 403: the raw bytes (an unknown cmdlet's NUL byte declared as gzip, graph-api.md §3.2), as in _read
        return Response(status, hdrs, content if status == 403 else decode_body(hdrs, content))

    async def _read(self, raw: httpx.Response) -> Response:
        try:
            if raw.status_code == 403:
                # An unknown cmdlet (or no Exchange.ManageAsApp) answers 403 with a NUL byte declared as gzip
                # (graph-api.md §3.2): decoding it would raise, so read the raw bytes.
                content = b"".join([chunk async for chunk in raw.aiter_raw()])
            else:
                content = await raw.aread()
        finally:
            await raw.aclose()
        return Response(raw.status_code, raw.headers, content)

    async def iter_invoke(
        self, cmdlet: str, parameters: Mapping[str, Any] | None = None, *, scope: str = "exchange",
        max_pages: int = 100_000,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        body = {"CmdletInput": {"CmdletName": cmdlet, "Parameters": dict(parameters or {})}}
        url: str | None = self.invoke_url
        seen: set[str] = set()
        pages = 0
        self.stats.logical_requests += 1
        self.stats.by_class["exchange"] += 1
        while url:
            if url in seen:
                raise ApiError("the service returned a paging link that loops", code="paging_loop",
                               service="exchange", path=cmdlet)
            seen.add(url)
            pages += 1
            if pages > max_pages:
                raise ApiError(f"more than {max_pages} pages", code="paging_limit", service="exchange", path=cmdlet)
            u = url
            bad_bodies = 0
            while True:
                resp = await self._sender.run(lambda u=u: self._post(u, body), scope=scope, path=cmdlet)
                if resp.status >= 400:
                    raise _error_from_body(resp.status, resp.body, "exchange", cmdlet, resp.headers)
                try:
                    data = _decode_json(resp, "exchange", cmdlet)
                    break
                except ApiError:
                    # A garbled page of a read (Get-*) is fetched again; a write's answer is never replayed.
                    bad_bodies += 1
                    if not cmdlet.startswith("Get-") or bad_bodies > self._sender.max_retries:
                        raise
                    self.stats.retries += 1
                    await asyncio.sleep(backoff(bad_bodies))
            if data is None:
                return  # Set-*/Remove-* often answer 200 with an empty body
            if not isinstance(data, dict):
                raise ApiError("unexpected response shape", code="malformed_response", service="exchange",
                               path=cmdlet)
            value = data.get("value")
            if value is None:
                value = []
            if not isinstance(value, list):
                raise ApiError("unexpected response shape (value is not a list)", code="malformed_response",
                               service="exchange", path=cmdlet)
            nxt = data.get("@odata.nextLink")
            url = nxt if isinstance(nxt, str) and nxt else None
            _check_warnings(data, cmdlet, has_next=url is not None, warned=self._warned)
            yield [v for v in value if isinstance(v, dict)]

    async def invoke(self, cmdlet: str, parameters: Mapping[str, Any] | None = None, *,
                     scope: str = "exchange") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for page in self.iter_invoke(cmdlet, parameters, scope=scope):
            out.extend(page)
        return out

    @property
    def batch_url(self) -> str:
        return f"{self.base_url}/adminapi/beta/{self.tenant_id}/$batch"

    async def invoke_many(self, calls: Sequence[tuple[str, Mapping[str, Any]]], *,
                          scope: str = "exchange") -> list[list[dict[str, Any]] | ApiError]:
        """Run many read cmdlets (``Get-*``); one result per call, in order: its rows, or the ApiError it ended with.

        Reads go ``EXCHANGE_BATCH`` at a time in one ``POST .../adminapi/beta/{tenant}/$batch``: the OData JSON batch
        of InvokeCommand calls (``{"requests": [{"id", "method": "POST", "url": <InvokeCommand URL>, "headers",
        "body": {"CmdletInput": ...}}]}`` -> ``{"responses": [{"id", "status", "headers", "body"}]}``), undocumented
        by Microsoft but used in production by CIPP (New-ExoBulkRequest, 10 per batch). The two cmdlets per mailbox
        are the sweep's most numerous requests. A throttled or failed sub-request is retried in a later batch; one with a
        next page is read again alone, whole. A service that refuses batching (404/405/400/501, an answer without
        ``responses``, or a first batch whose every sub-request is refused with one of those) gets the cmdlets one at a
        time for the rest of the connection, and so does every call when batching is off."""
        for cmdlet, _ in calls:
            if not cmdlet.startswith("Get-"):
                raise ValueError(f"invoke_many batches reads only, not {cmdlet}")
        if self._batch_ok is False or len(calls) < 2:
            return list(await asyncio.gather(*(self._invoke_or_error(c, p, scope) for c, p in calls)))
        groups = [list(range(i, min(i + EXCHANGE_BATCH, len(calls)))) for i in range(0, len(calls), EXCHANGE_BATCH)]
        out: list[list[dict[str, Any]] | ApiError | None] = [None] * len(calls)
        if self._batch_ok is None:
            # The first batch is a probe: until the service has answered one, other callers wait rather than post
            # batches a service without them would refuse one by one.
            async with self._probe:
                if self._batch_ok is None:
                    await self._batch_group(calls, groups.pop(0), out, scope)
            if self._batch_ok is False:
                rest = [i for g in groups for i in g]
                results = await asyncio.gather(*(self._invoke_or_error(*calls[i], scope) for i in rest))
                for i, r in zip(rest, results, strict=True):
                    out[i] = r
                groups = []
        await asyncio.gather(*(self._batch_group(calls, g, out, scope) for g in groups))
        return [r if r is not None else ApiError("no answer", code="malformed_response", service="exchange",
                                                 path=calls[i][0]) for i, r in enumerate(out)]

    async def _invoke_or_error(self, cmdlet: str, params: Mapping[str, Any],
                               scope: str) -> list[dict[str, Any]] | ApiError:
        try:
            return await self.invoke(cmdlet, params, scope=scope)
        except ApiError as err:
            return err

    async def _batch_group(self, calls: Sequence[tuple[str, Mapping[str, Any]]], idx: list[int],
                           out: list[Any], scope: str) -> None:
        sub_headers = {"Content-Type": "application/json", "Accept": "application/json",
                       "X-AnchorMailbox": self._anchor, "Prefer": f"odata.maxpagesize={self.page_size}"}
        pending = list(idx)
        alone: list[int] = []  # read again one at a time: a next page, a garbled or missing answer, a refused batch
        throttles: dict[int, int] = defaultdict(int)  # 429 answers per call (the single path's throttle budget)
        waited = 0.0
        self.stats.logical_requests += len(idx)
        self.stats.by_class["exchange"] += len(idx)
        while pending:
            body = {"requests": [{"id": str(i), "method": "POST", "url": self.invoke_url, "headers": sub_headers,
                                  "body": {"CmdletInput": {"CmdletName": calls[i][0],
                                                           "Parameters": dict(calls[i][1])}}} for i in pending]}
            try:
                resp = await self._sender.run(lambda body=body: self._post(self.batch_url, body), scope=scope,
                                              path="$batch")
            except ApiError:
                alone.extend(pending)  # the batch itself kept failing: each cmdlet's own path names its error
                break
            data = None
            if resp.status < 400:
                try:
                    data = _decode_json(resp, "exchange", "$batch")
                except ApiError:
                    data = None
            answers = data.get("responses") if isinstance(data, dict) else None
            if not isinstance(answers, list):
                if resp.status in (400, 404, 405, 501) or resp.status < 400:
                    if self._batch_ok is None:
                        self._batch_ok = False
                        _log.info("the Exchange admin API did not take a $batch (HTTP %s); sending cmdlets one at a "
                                  "time", resp.status)
                alone.extend(pending)
                break
            by_id = {str(a.get("id")): a for a in answers if isinstance(a, dict)}
            if self._batch_ok is None:
                # The probe: an envelope taken but no sub-request served (each one refused as a request) is a batch
                # this service does not route; the cmdlets it carried are not really failed.
                codes = {a.get("status") for a in by_id.values()}
                if codes and codes <= {400, 404, 405, 501}:
                    self._batch_ok = False
                    _log.info("the Exchange admin API refused every request of a $batch (HTTP %s); sending cmdlets "
                              "one at a time", "/".join(str(c) for c in sorted(codes)))
                    alone.extend(pending)
                    break
            self._batch_ok = True
            retry: list[int] = []
            wait = 0.0
            throttled = False
            for i in pending:
                a = by_id.get(str(i))
                status = a.get("status") if a is not None else None
                if not isinstance(status, int):
                    alone.append(i)
                    continue
                cmdlet = calls[i][0]
                headers = {str(k): str(v) for k, v in (a.get("headers") or {}).items()} \
                    if isinstance(a.get("headers"), dict) else {}
                abody = a.get("body")
                if isinstance(abody, str) and abody.lstrip().startswith("{"):
                    try:  # a body sent as JSON text, as some OData services do for sub-responses
                        abody = loads(abody)
                    except ValueError:
                        pass
                if status == 429:
                    # Throttled: retried in a later batch after its Retry-After, within the single path's budget.
                    self.stats.throttled += 1
                    throttles[i] += 1
                    if throttles[i] > max(self._sender.max_retries, THROTTLE_MAX_RETRIES) or \
                            waited > THROTTLE_BUDGET_S:
                        out[i] = _error_from_body(status, orjson.dumps(abody) if isinstance(abody, dict) else b"",
                                                  "exchange", cmdlet, headers)
                        continue
                    ra = parse_retry_after(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))
                    wait = max(wait, ra if ra is not None else backoff(throttles[i]))
                    throttled = True
                    retry.append(i)
                    continue
                if status >= 500 or status == 401:
                    # A failed or unauthorised sub-request goes through the single path, with its retries, token
                    # refresh and error wording.
                    self.stats.server_errors += status >= 500
                    alone.append(i)
                    continue
                if status >= 400:
                    out[i] = _error_from_body(status, orjson.dumps(abody) if isinstance(abody, (dict, list)) else b"",
                                              "exchange", cmdlet, headers)
                    continue
                if abody is None:
                    out[i] = []
                    continue
                value = abody.get("value") if isinstance(abody, dict) else None
                if not isinstance(abody, dict) or not isinstance(value, list | None) or abody.get("@odata.nextLink"):
                    alone.append(i)  # garbled, or longer than one page: read it again on its own, whole
                    continue
                try:
                    _check_warnings(abody, cmdlet, has_next=False, warned=self._warned)
                except ApiError as err:
                    out[i] = err
                    continue
                out[i] = [v for v in value or () if isinstance(v, dict)]
            pending = retry
            if pending:
                self.stats.retries += len(pending)
                waited += wait
                if throttled:
                    self.gate.block(scope, wait)  # Retry-After holds this scope's other calls too (§9.1)
                else:
                    await asyncio.sleep(wait)
        if alone:
            self.stats.logical_requests -= len(alone)  # counted again by invoke()
            self.stats.by_class["exchange"] -= len(alone)
            results = await asyncio.gather(*(self._invoke_or_error(calls[i][0], calls[i][1], scope) for i in alone))
            for i, r in zip(alone, results, strict=True):
                out[i] = r
