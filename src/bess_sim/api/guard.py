"""HTTP edge guards that run before any route: cross-site requests and body size (docs/rest.md).

Cross-site rule. A web page on another origin can make a browser send a "simple" request
(Fetch standard §3.2.3: POST with no body or a text/plain / form body) without a CORS
preflight; the page cannot read the answer, but the side effect — a trip, a reset, a dispatch —
happens. With no token configured, any page open on the lab machine could then trip a battery.
So every mutating request (POST/PUT/PATCH/DELETE):

* with an ``Origin`` header that is not this server's own origin (scheme-default port
  normalised, compared with ``Host``), or ``"null"``, or with ``Sec-Fetch-Site: cross-site`` /
  ``same-site`` → **403**. Browsers send ``Origin`` on every cross-origin POST; curl, Python,
  PLC gateways and EMS back-ends send none and are unaffected;
* with a body whose ``Content-Type`` is not JSON (``application/json`` or
  ``application/<x>+json``) → **415**. A JSON content type is not a simple request, so a
  browser preflights it, and the simulator answers no CORS headers: the preflight fails.

Body size. A request body larger than ``max_body_bytes`` → **413**: refused from
``Content-Length`` before anything is read, or, for a chunked body, as soon as the bytes read
exceed the limit (the rest is never buffered; the connection is closed).
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import MUTATING_METHODS

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(host: str, default_port: int) -> tuple[str, int] | None:
    """``"Host:port"`` → (lower-case host, port); None when unparseable."""
    try:
        parts = urlsplit(f"//{host}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None:
        return None
    return parts.hostname.lower(), port if port is not None else default_port


def same_origin(origin: str, host: str | None, scheme: str) -> bool:
    """True when ``origin`` (the Origin header) names the server reached through ``host``
    (the Host header). The origin's own scheme decides its default port."""
    if host is None or origin == "null":
        return False
    try:
        o = urlsplit(origin)
        o_port = o.port
    except ValueError:
        return False
    if o.scheme not in _DEFAULT_PORTS or o.hostname is None:
        return False
    mine = _host_port(host, _DEFAULT_PORTS.get(scheme, 80))
    # Behind a TLS-terminating proxy the page is https://name while we see plain http with
    # Host: name — compare the Host against the origin's own default port too.
    mine_o = _host_port(host, _DEFAULT_PORTS[o.scheme])
    theirs = (o.hostname.lower(), o_port if o_port is not None else _DEFAULT_PORTS[o.scheme])
    return theirs in (mine, mine_o)


#: Routes that also take a YAML body (a scenario file, DESIGN §12).
YAML_BODY_PATHS = frozenset({"/scenarios"})


def _is_json(content_type: str | None, yaml_ok: bool = False) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media.partition("/")
    if main != "application":
        return False
    # YAML is, like JSON, not a CORS-safelisted type: a cross-site page cannot send it without
    # a preflight, so the CSRF reasoning holds where a route takes it.
    if yaml_ok and (sub in ("yaml", "x-yaml") or sub.endswith("+yaml")):
        return True
    return sub == "json" or sub.endswith("+json")


def cross_site_refusal(
    headers: Headers, scheme: str, yaml_ok: bool = False
) -> tuple[int, str] | None:
    """(status, detail) when a mutating request must be refused, else None."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site in ("cross-site", "same-site"):
        return 403, f"cross-origin request refused (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is not None and not same_origin(origin, headers.get("host"), scheme):
        return 403, f"cross-origin request refused (Origin {origin[:100]!r})"
    has_body = headers.get("transfer-encoding") is not None or headers.get(
        "content-length", "0"
    ).strip() not in ("", "0")
    if has_body and not _is_json(headers.get("content-type"), yaml_ok):
        shown = (headers.get("content-type") or "none")[:100]
        return 415, f"request body must be JSON (Content-Type: application/json), got {shown}"
    return None


async def _send_json(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HttpGuard:
    """ASGI middleware applying the rules of this module to every HTTP request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] in MUTATING_METHODS:
            refusal = cross_site_refusal(
                headers, scope.get("scheme", "http"), scope.get("path") in YAML_BODY_PATHS
            )
            if refusal is not None:
                await _send_json(send, *refusal)
                return
        limit = self.max_body_bytes
        too_large = f"request body larger than {limit} bytes (BESS_HTTP_MAX_BODY_BYTES)"
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > limit:
            await _send_json(send, 413, too_large, close=True)
            return

        received = 0
        refused = False

        async def guarded_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The app sees a disconnect (it stops reading); the client gets the 413.
                    refused = True
                    await _send_json(send, 413, too_large, close=True)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, guarded_receive, guarded_send)
