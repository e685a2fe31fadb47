"""The ASGI application: Graph v1.0 + Exchange admin API on one host, with auth, throttling, faults and $batch."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import orjson

from . import exchange, graph, tokens
from .faults import FaultRule, RandomFaults
from .model import Tenant
from .permissions import ALL_PERMISSIONS, REQUIRED
from .throttle import Throttler, resource_units

JSON_CT = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
EXO_CT = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


@dataclass
class SimOptions:
    permissions: set[str] | frozenset[str] | None = None  # None = every permission the simulator knows
    latency_ms: int = 0
    throttle: bool = False
    retry_after: int | float | str = 1
    fault_rate: float = 0.0
    seed: int = 0
    token_lifetime_s: int = 3600
    exchange_page_size: int = 1000     # default page when the client sends no Prefer: odata.maxpagesize
    shuffle_batch: bool = True
    # Unknown cmdlets: 403 with a single NUL byte declared as gzip, like the real endpoint; httpx then raises
    # DecodingError unless the client streams the response. False drops the Content-Encoding header.
    nul_403_gzip: bool = True
    # Exchange read-after-write lag (graph-api.md §3.2), off by default: after a write to a mailbox (Set-Mailbox,
    # Disable-InboxRule, Remove-MailboxPermission, ...), the next N Get-* reads of that mailbox, and/or reads during
    # the next S seconds of the tenant's clock, show the state from before the write. See exchange.ReadLag.
    exchange_read_lag_reads: int = 0
    exchange_read_lag_seconds: float = 0.0
    # Exchange RBAC: cmdlets outside the app's Exchange role(s) (e.g. {"Get-TransportRule"} for an app that holds only
    # Exchange Recipient Administrator). The REST session is built from the roles, so such a cmdlet answers like an
    # unknown one: 403 with a NUL byte declared as gzip (graph-api.md §3.2).
    exchange_rbac_denied: frozenset[str] = frozenset()
    # Exchange admin API JSON batching (POST /adminapi/beta/{tenant}/$batch, up to exchange_batch_max InvokeCommand
    # sub-requests run concurrently; field-proven in CIPP's New-ExoBulkRequest, not documented by Microsoft). False:
    # the endpoint answers 404, like an implementation without it (the client then sends cmdlets one at a time).
    exchange_batch: bool = True
    exchange_batch_max: int = 10


class Resp:
    __slots__ = ("status", "body", "headers", "special")

    def __init__(self, status: int, body: bytes = b"", headers: dict | None = None, special: str | None = None) -> None:
        self.status, self.body, self.headers, self.special = status, body, headers or {}, special


class SimulatedConnectionReset(httpx.RemoteProtocolError):
    """Raised inside the app to cut the connection (in-process clients see what a real reset looks like)."""


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class SimulatorApp:
    """ASGI callable. ``app.tenant`` is the state; ``app.issue_token(resource)`` mints bearer tokens."""

    def __init__(self, tenant: Tenant, options: SimOptions | None = None) -> None:
        self.tenant = tenant
        self.options = options or SimOptions()
        roles = self.options.permissions
        self.roles = frozenset(ALL_PERMISSIONS if roles is None else roles)
        self.throttler = Throttler(tenant.user_count)
        self.random_faults = RandomFaults(self.options.fault_rate, self.options.seed)
        self.batch_rng = random.Random(self.options.seed + 17)
        self.exchange_lag = exchange.ReadLag(tenant, self.options.exchange_read_lag_reads,
                                             self.options.exchange_read_lag_seconds)
        self.graph_token = self.issue_token(tokens.GRAPH_RESOURCE)
        self.exchange_token = self.issue_token(tokens.EXCHANGE_RESOURCE)

    # ------------------------------------------------------------------ tokens
    def issue_token(self, resource: str = tokens.GRAPH_RESOURCE, lifetime_s: int | None = None,
                    roles: set[str] | None = None) -> str:
        resource = resource.removesuffix("/.default").rstrip("/")
        return tokens.issue(self.tenant.token_secret, self.tenant.tenant_id, resource,
                            sorted(self.roles if roles is None else roles),
                            lifetime_s if lifetime_s is not None else self.options.token_lifetime_s,
                            generation=self.tenant.token_generation)

    def expire_tokens(self) -> None:
        """Every token issued so far now fails with 401 InvalidAuthenticationToken (fresh ones work)."""
        self.tenant.token_generation += 1

    @property
    def counters(self) -> dict[str, Any]:
        return {"requests": dict(self.throttler.requests), "throttled": dict(self.throttler.throttled),
                "stats": dict(self.tenant.stats)}

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        base = f"{scope.get('scheme', 'http')}://{host}"
        raw_qs = scope.get("query_string", b"").decode("latin-1")
        resp = await self.handle(scope["method"], scope["path"], raw_qs, headers, body, base)
        hdrs = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in resp.headers.items()]
        if resp.special == "reset":
            hdrs.append((b"content-length", b"4096"))
            await send({"type": "http.response.start", "status": 200, "headers": hdrs})
            await send({"type": "http.response.body", "body": b'{"value":[', "more_body": True})
            raise SimulatedConnectionReset("Server disconnected without sending a complete response (simulated reset).")
        hdrs.append((b"content-length", str(len(resp.body)).encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": hdrs})
        await send({"type": "http.response.body", "body": resp.body})

    # ------------------------------------------------------------------ core
    async def handle(self, method: str, path: str, raw_qs: str, headers: dict, body: bytes, base: str,
                     inner: bool = False) -> Resp:
        rid = str(uuid.uuid4())
        crid = headers.get("client-request-id") or rid
        common = {"request-id": rid, "client-request-id": crid, "Date": http_date()}
        if path.startswith("/v1.0/") or path == "/v1.0":
            resp = await self._graph(method, path[5:], raw_qs, headers, body, base, rid, crid, inner)
        elif path.startswith("/adminapi/"):
            resp = await self._exchange(method, path, raw_qs, headers, body, base, rid, crid)
        elif path.startswith("/beta/"):
            resp = self._graph_error(404, "BadRequest", "The simulator serves Graph v1.0 only.", rid, crid)
        else:
            resp = self._graph_error(404, "UnknownError", "", rid, crid)
        for k, v in common.items():
            resp.headers.setdefault(k, v)
        return resp

    def _graph_error(self, status: int, code: str, message: str, rid: str, crid: str, headers: dict | None = None,
                     extra_inner: dict | None = None) -> Resp:
        inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request-id": rid, "client-request-id": crid}
        if extra_inner:
            inner.update(extra_inner)
        body = orjson.dumps({"error": {"code": code, "message": message, "innerError": inner}})
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return Resp(status, body, h)

    def _fault_response(self, f: FaultRule, rid: str, crid: str, exchange_api: bool = False) -> Resp | None:
        if f.kind == "expire_tokens":
            # the token in use (and every other issued so far) expires right now, mid-scan
            self.expire_tokens()
            if exchange_api:
                return Resp(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"',
                                       "x-ms-diagnostics": '2000001;reason="Lifetime validation failed, the token is expired.";error_category="invalid_token"'})
            return self._graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.",
                                     rid, crid)
        if f.kind == "reset":
            return Resp(200, b"", {"Content-Type": JSON_CT}, special="reset")
        if f.kind == "malformed":
            return Resp(200, b'{"@odata.context":"x","value":[{"id":"1",,}', {"Content-Type": JSON_CT})
        if f.kind == "truncated":
            return Resp(200, b'{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users","value":[{"id":"6ea91a8d-e3',
                        {"Content-Type": JSON_CT})
        if f.kind == "empty":
            return Resp(f.status, b"", {})
        if f.kind in ("status", "throttle"):
            hdrs = {}
            if f.retry_after is not None and (f.kind == "throttle" or f.status in (429, 503, 504)):
                hdrs["Retry-After"] = f.retry_after
            code = f.code or {429: "TooManyRequests", 500: "generalException", 503: "serviceNotAvailable",
                              504: "UnknownError", 404: "ErrorItemNotFound", 403: "ErrorAccessDenied"}.get(f.status, "UnknownError")
            msg = f.message or {429: "Please retry again later.", 503: "Service Unavailable",
                                504: "Gateway Timeout"}.get(f.status, "An internal server error occurred.")
            return self._graph_error(f.status, code, msg, rid, crid, hdrs)
        return None  # loop_nextlink is applied by the handler

    def _auth(self, headers: dict, resource: str) -> dict:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            raise tokens.TokenError("Access token is empty.", "empty")
        return tokens.validate(self.tenant.token_secret, auth[7:].strip(), self.tenant.tenant_id, resource,
                               self.tenant.token_generation)

    # ------------------------------------------------------------------ Graph
    async def _graph(self, method: str, path: str, raw_qs: str, headers: dict, body: bytes, base: str,
                     rid: str, crid: str, inner: bool) -> Resp:
        t = self.tenant
        try:
            claims = self._auth(headers, tokens.GRAPH_RESOURCE)
        except tokens.TokenError as e:
            return self._graph_error(401, "InvalidAuthenticationToken", str(e), rid, crid, {
                "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                                    'client_id="00000003-0000-0000-c000-000000000000"'})
        query = dict(parse_qsl(raw_qs, keep_blank_values=True))
        req = graph.Req(method, path, query, headers, body, base)
        req.roles = frozenset(claims.get("roles", ()))
        if req.segs == ["$batch"] and method == "POST" and t.faults.rules:
            f = t.faults.check_graph(method, "/v1.0" + path, None)
            if f is not None and f.kind != "loop_nextlink":
                r = self._fault_response(f, rid, crid)
                if r is not None:
                    return r
        if req.segs == ["$batch"] and method == "POST":
            if inner:
                return self._graph_error(400, "BadRequest", "Nested batch requests are not supported.", rid, crid)
            self.throttler.requests["batch"] += 1
            return await self._batch(headers, body, base, rid, crid)
        cls = graph.request_class(req.segs)
        self.throttler.requests[cls] += 1
        t.stats["graph_requests"] += 1
        if not inner:
            rf = self.random_faults.draw()
            if rf is not None:
                return self._fault_response(rf, rid, crid)
        upn = graph.target_upn(t, req.segs) if t.faults.rules else None
        f = t.faults.check_graph(method, "/v1.0" + path, upn) if t.faults.rules else None
        if f is not None:
            if f.kind == "loop_nextlink":
                req.loop_nextlink = True
            else:
                r = self._fault_response(f, rid, crid)
                if r is not None:
                    return r
        extra_headers: dict[str, str] = {}
        mailbox_key = None
        latency = self.options.latency_ms / 1000 if self.options.latency_ms else 0.0
        if latency and cls != "outlook":
            await asyncio.sleep(latency)
        elif latency and not self.options.throttle:
            await asyncio.sleep(latency)
        if self.options.throttle:
            ra = str(self.options.retry_after)
            if cls == "reports":
                if not self.throttler.reports():
                    return self._graph_error(429, "TooManyRequests", "Too many requests.", rid, crid, {"Retry-After": ra})
            elif cls == "outlook":
                mailbox_key = graph.mail_target(t, req.segs)
                idx = t.find_index(mailbox_key) if mailbox_key else None
                mailbox_key = t.user_id_for(idx) if idx is not None else mailbox_key
                msg = self.throttler.outlook_enter(mailbox_key)
                if msg is not None:
                    return self._graph_error(429, "ApplicationThrottled", msg, rid, crid, {"Retry-After": ra})
            else:
                cost = resource_units(method, path, query)
                extra_headers["x-ms-resource-unit"] = str(cost)
                if not self.throttler.directory(cost):
                    scope = f"Tenant_Application/{'Read' if method == 'GET' else 'Write'}/{tokens.SIM_APP_ID}/{t.tenant_id}"
                    return self._graph_error(429, "TooManyRequests", "Too many requests.", rid, crid,
                                             {"Retry-After": ra, "x-ms-throttle-scope": scope,
                                              "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                                              "x-ms-resource-unit": str(cost)})
        try:
            if body and method in ("POST", "PATCH", "PUT"):
                try:
                    req.json_body = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise graph.GraphError(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.") from None
            if mailbox_key is not None and latency:
                # Outlook requests hold their mailbox slot while they run, so latency creates real concurrency.
                await asyncio.sleep(latency)
            status, payload = graph.dispatch(t, req)
        except graph.GraphError as e:
            return self._graph_error(e.status, e.code, e.message, rid, crid, {**extra_headers, **e.headers})
        finally:
            if mailbox_key is not None:
                self.throttler.outlook_exit(mailbox_key)
        if status == 204 or payload is None:
            return Resp(status, b"", extra_headers)
        if isinstance(payload, str):
            return Resp(status, payload.encode(), {"Content-Type": "text/plain", **extra_headers})
        h = {"Content-Type": JSON_CT, **extra_headers}
        if graph.request_class(req.segs) == "outlook" or (req.segs and req.segs[0] == "users" and len(req.segs) > 2):
            h["x-ms-ags-diagnostic"] = '{"ServerInfo":{"DataCenter":"West US 2","Slice":"E","Ring":"1","ScaleUnit":"001","RoleInstance":"MW2PEPF0000XXXX"}}'
        return Resp(status, orjson.dumps(payload), h)

    async def _batch(self, headers: dict, body: bytes, base: str, rid: str, crid: str) -> Resp:
        def bad(msg: str) -> Resp:
            return self._graph_error(400, "BadRequest", msg, rid, crid)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return bad("Invalid batch payload format.")
        reqs = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return bad("Invalid batch payload format.")
        if len(reqs) > 20:
            return bad("The number of batch requests in the payload exceeds the limit of 20.")
        seen: set[str] = set()
        for r in reqs:
            if not isinstance(r, dict) or not r.get("id") or not r.get("method") or "url" not in r:
                return bad("Invalid batch payload format.")
            rid_ = str(r["id"])
            if rid_ in seen:
                return bad("Batch request ids must be unique.")
            seen.add(rid_)
            url = str(r["url"])
            if url.startswith("http://") or url.startswith("https://"):
                return bad("Batch request URLs must be relative.")
            if "body" in r and r["body"] is not None:
                hdrs = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
                if "content-type" not in hdrs:
                    return bad("Write request id : " + rid_ + " does not contain Content-Type header or body.")
            for d in r.get("dependsOn") or []:
                if str(d) not in seen or str(d) == rid_:
                    return bad(f"Request '{rid_}' depends on '{d}', which is not an earlier request in the batch.")
        results: dict[str, dict] = {}
        done: dict[str, asyncio.Event] = {str(r["id"]): asyncio.Event() for r in reqs}
        # Graph hands the Outlook service up to 4 requests of a batch at a time (graph-api.md §9.2); nothing limits the
        # batch's other sub-requests (directory, reports), which run at once.
        gate = asyncio.Semaphore(4)

        async def run_one(r: dict) -> None:
            rid_ = str(r["id"])
            deps = [str(d) for d in (r.get("dependsOn") or [])]  # the SDK's "depends_on" is ignored, as Graph does
            try:
                for d in deps:
                    await done[d].wait()
                if any(results[d]["status"] >= 400 for d in deps):
                    results[rid_] = {"id": rid_, "status": 424, "headers": {"Content-Type": "application/json"},
                                     "body": {"error": {"code": "FailedDependency", "message": "Failed dependency"}}}
                    return
                url = str(r["url"])
                if not url.startswith("/"):
                    url = "/" + url
                path, _, qs = url.partition("?")
                path = unquote(path)
                ih = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
                for k in ("authorization", "client-request-id"):
                    if k in headers:
                        ih.setdefault(k, headers[k])
                ibody = orjson.dumps(r["body"]) if r.get("body") is not None else b""
                method_ = str(r["method"]).upper()
                if graph.request_class(graph.Req(method_, path, {}, {}, b"", base).segs) == "outlook":
                    async with gate:
                        resp = await self.handle(method_, "/v1.0" + path, qs, ih, ibody, base, inner=True)
                else:
                    resp = await self.handle(method_, "/v1.0" + path, qs, ih, ibody, base, inner=True)
                if resp.special == "reset":
                    resp = self._graph_error(503, "serviceNotAvailable", "Service Unavailable", rid, crid, {"Retry-After": "1"})
                out: dict[str, Any] = {"id": rid_, "status": resp.status,
                                       "headers": {k: v for k, v in resp.headers.items()
                                                   if k in ("Content-Type", "Retry-After", "Location", "x-ms-resource-unit",
                                                            "x-ms-throttle-scope", "x-ms-throttle-information")}}
                if resp.body:
                    ct = resp.headers.get("Content-Type", "")
                    if "json" in ct:
                        try:
                            out["body"] = orjson.loads(resp.body)
                        except orjson.JSONDecodeError:
                            out["body"] = resp.body.decode("utf-8", "replace")
                    else:
                        out["body"] = resp.body.decode("utf-8", "replace")
                results[rid_] = out
            finally:
                done[rid_].set()

        await asyncio.gather(*(run_one(r) for r in reqs))
        responses = list(results.values())
        if self.options.shuffle_batch:
            self.batch_rng.shuffle(responses)
        return Resp(200, orjson.dumps({"responses": responses}), {"Content-Type": JSON_CT})

    # ------------------------------------------------------------------ Exchange
    async def _exchange(self, method: str, path: str, raw_qs: str, headers: dict, body: bytes, base: str,
                        rid: str, crid: str, inner: bool = False) -> Resp:
        t = self.tenant
        segs = [s for s in path.split("/") if s]
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000)
        if not (len(segs) == 4 and segs[3] == "$batch"):
            self.throttler.requests["exchange"] += 1
            t.stats["exchange_requests"] += 1
        try:
            claims = self._auth(headers, tokens.EXCHANGE_RESOURCE)
        except tokens.TokenError as e:
            return Resp(401, b"", {"WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
                                                       'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
                                                       'token_types="app_asserted_user_v1 service_asserted_app_v1", '
                                                       'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                                                       'error="invalid_token"',
                                   "x-ms-diagnostics": f'2000003;reason="{e}";error_category="invalid_token"'})
        if len(segs) == 4 and segs[1] == "beta" and segs[3] == "$batch" and self.options.exchange_batch and not inner:
            if segs[2].lower() not in (t.tenant_id, *t.domains):
                return Resp(404, b"", {})
            if method != "POST":
                return Resp(405, b"", {"Allow": "POST"})
            self.throttler.requests["exchange_batch"] += 1
            rf = self.random_faults.draw()
            if rf is not None:
                return self._fault_response(rf, rid, crid, exchange_api=True)
            return await self._exchange_batch(segs[2], headers, body, base, rid, crid)
        if len(segs) != 4 or segs[1] != "beta" or segs[3] != "InvokeCommand":
            return Resp(405 if len(segs) == 4 and segs[3] == "InvokeCommand" else 404, b"", {})
        if segs[2].lower() not in (t.tenant_id, *t.domains):
            return Resp(404, b"", {})
        if method != "POST":
            return Resp(405, b"", {"Allow": "POST"})
        if set(REQUIRED["exchange"][1]).isdisjoint(claims.get("roles", ())):
            return self._exo_error(403, "Ex0D7D2F", "Microsoft.Exchange.Management.Tasks.AccessDeniedException",
                                   "The user or application doesn't have the permissions required (Exchange.ManageAsApp).")
        try:
            doc = orjson.loads(body)
            ci = doc["CmdletInput"]
            cmdlet = str(ci["CmdletName"])
            params = ci.get("Parameters") or {}
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._exo_error(400, "Ex6A1B2C", "System.ArgumentException", "The request body is not a valid CmdletInput.")
        rf = self.random_faults.draw()
        if rf is not None:
            return self._fault_response(rf, rid, crid, exchange_api=True)
        f = t.faults.check_cmdlet(cmdlet, exchange.target_of(params)) if t.faults.rules else None
        loop = False
        if f is not None:
            if f.kind == "loop_nextlink":
                loop = True
            else:
                r = self._fault_response(f, rid, crid, exchange_api=True)
                if r is not None:
                    return r
        if cmdlet not in exchange.KNOWN_PARAMS or cmdlet in self.options.exchange_rbac_denied:
            # Unknown cmdlets answer 403 with a NUL-byte body declared as gzip (graph-api.md §3.2).
            hdrs = {"Content-Type": "application/json"}
            if self.options.nul_403_gzip:
                hdrs["Content-Encoding"] = "gzip"
            return Resp(403, b"\x00", hdrs)
        try:
            rows, warnings = exchange.run(t, cmdlet, params, self.exchange_lag)
        except exchange.CmdletError as e:
            return self._exo_error(e.status, e.code, e.exc_type, e.text)
        query = dict(parse_qsl(raw_qs, keep_blank_values=True))
        m = re.search(r"odata\.maxpagesize=(\d+)", headers.get("prefer", ""))
        size = max(1, int(m.group(1))) if m else self.options.exchange_page_size
        token = query.get("$skiptoken")
        if isinstance(rows, exchange.BulkPager):
            cursor = token.removeprefix("EXB") if token else None
            chunk, nxt_cursor, more_warnings = rows.page(cursor, size)
            warnings = warnings + more_warnings
            nxt_token = None if nxt_cursor is None else "EXB" + ((cursor or "0:0") if loop else nxt_cursor)
        else:
            start = 0
            if token:
                try:
                    start = int(token.removeprefix("EXO"), 16) ^ 0x5A5A
                except ValueError:
                    start = 0
            chunk = rows[start:start + size]
            nxt_token = None
            if start + size < len(rows):
                nxt_token = f"EXO{(start if loop else start + size) ^ 0x5A5A:x}"
        if "$select" in query:
            keep = {p.strip() for p in query["$select"].split(",") if p.strip()}
            chunk = [{k: v for k, v in r.items() if k in keep or k.split("@")[0] in keep} for r in chunk]
        out: dict[str, Any] = {"@odata.context": f"{base}/adminapi/beta/{segs[2]}/$metadata#Collection(Exchange.GenericHashTable)",
                               "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": warnings,
                               "value": chunk}
        if nxt_token is not None:
            out["@odata.nextLink"] = f"{base}/adminapi/beta/{segs[2]}/InvokeCommand?$skiptoken={nxt_token}"
        return Resp(200, orjson.dumps(out), {"Content-Type": EXO_CT})

    async def _exchange_batch(self, tenant_seg: str, headers: dict, body: bytes, base: str, rid: str,
                              crid: str) -> Resp:
        """OData JSON batch of InvokeCommand calls: ``{"requests": [{"id", "method": "POST", "url", "headers",
        "body": {"CmdletInput": ...}}]}`` -> ``{"responses": [{"id", "status", "headers", "body"}]}`` in any order.
        The URL may be absolute or start with ``/adminapi/``; each sub-request is run (concurrently) like a single
        InvokeCommand with the batch's token, faults and latency included."""
        def bad(msg: str) -> Resp:
            return self._exo_error(400, "Ex5B3E21", "Microsoft.Exchange.Admin.OData.Core.ODataBadRequestException", msg)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return bad("The batch request body is not valid JSON.")
        reqs = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return bad("The batch request must contain a 'requests' array.")
        if len(reqs) > self.options.exchange_batch_max:
            return bad(f"The number of requests in the batch exceeds the limit of {self.options.exchange_batch_max}.")
        seen: set[str] = set()
        parsed: list[tuple[str, str, str]] = []
        for r in reqs:
            if not isinstance(r, dict) or not r.get("id") or "url" not in r:
                return bad("Each batch request needs an 'id' and a 'url'.")
            rid_ = str(r["id"])
            if rid_ in seen:
                return bad("Batch request ids must be unique.")
            seen.add(rid_)
            url = str(r["url"])
            if url.startswith(("http://", "https://")):
                url = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
            path, _, qs = url.partition("?")
            if not path.startswith("/adminapi/") or str(r.get("method") or "POST").upper() != "POST":
                return bad(f"Request '{rid_}': only POST .../InvokeCommand can be batched.")
            parsed.append((rid_, unquote(path), qs))

        async def run_one(r: dict, rid_: str, path: str, qs: str) -> dict[str, Any]:
            ih = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
            for k in ("authorization", "client-request-id"):
                if k in headers:
                    ih.setdefault(k, headers[k])
            ibody = orjson.dumps(r["body"]) if r.get("body") is not None else b""
            resp = await self._exchange("POST", path, qs, ih, ibody, base, rid, crid, inner=True)
            if resp.special == "reset":
                resp = self._exo_error(503, "Ex2C9A10", "System.TimeoutException", "The operation timed out.")
                resp.headers["Retry-After"] = "1"
            out: dict[str, Any] = {"id": rid_, "status": resp.status,
                                   "headers": {k: v for k, v in resp.headers.items()
                                               if k in ("Content-Type", "Retry-After")}}
            if resp.body and resp.status != 403:
                try:
                    out["body"] = orjson.loads(resp.body)
                except orjson.JSONDecodeError:
                    out["body"] = resp.body.decode("utf-8", "replace")
            return out

        responses = list(await asyncio.gather(*(run_one(r, *p) for r, p in zip(reqs, parsed, strict=True))))
        if self.options.shuffle_batch:
            self.batch_rng.shuffle(responses)
        return Resp(200, orjson.dumps({"responses": responses}), {"Content-Type": EXO_CT})

    def _exo_error(self, status: int, code: str, exc_type: str, text: str) -> Resp:
        body = {"error": {"code": "InternalServerError" if status >= 500 else "BadRequest", "message": "Error executing cmdlet",
                          "details": [{"code": "Context", "target": "", "message": f"{code}|{exc_type}|{text}"}],
                          "innererror": {"message": text,
                                         "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                                         "stacktrace": "", "internalException": {"message": text, "type": exc_type,
                                                                                 "stacktrace": ""}}},
                "adminapi.warnings@odata.type": "#Collection(String)", "@adminapi.warnings": []}
        return Resp(status, orjson.dumps(body), {"Content-Type": "application/json"})


def create_app(tenant: Tenant, options: SimOptions | None = None) -> SimulatorApp:
    return SimulatorApp(tenant, options)
