"""The HTTP edge as a pure ASGI middleware: the bearer token is checked before any body is read, and request
bodies are counted while they arrive, so no request makes the service hold more than its limits.

Order for every `/v1` request:

0. `OPTIONS` on a known path answers 204 with `Allow` (the path's methods);
1. with a token configured, a missing or wrong `Authorization: Bearer` header is a 401 at once (the body is
   never read; the server closes the connection instead of draining it);
2. a declared `Content-Length` over the route's cap is a 413 at once;
3. otherwise the body is handed to the app through a counting `receive`: the first chunk that passes the cap
   (chunked bodies declare no length) ends the request with a 413.

Caps: `/v1/uploads` gets the upload limit plus room for the multipart framing; every other route gets
`max_body_bytes`. The upload handler also counts the file part itself (see `studio.uploads`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROTECTED_PREFIX = "/v1/"  # the paths the token and the caps apply to
MULTIPART_ROOM = 1 << 20  # field headers, boundaries and the small form fields beside the file


@dataclass(frozen=True, kw_only=True)
class EdgeLimits:
    """What the edge enforces.

    Attributes:
        token: when set, `/v1` requests need `Authorization: Bearer <token>`.
        max_body_bytes: the largest body of a JSON request.
        max_upload_bytes: the largest uploaded file (`/v1/uploads` may carry `MULTIPART_ROOM` more).
        methods: `methods(path)`, the methods a path answers (empty: no such path); OPTIONS answers with them.
        error_body: `error_body(path, status, message, field)`, the JSON body of an error on `path` (the
            OpenAI-compatible paths answer in their own shape).
    """

    token: str | None
    max_body_bytes: int
    max_upload_bytes: int
    methods: Callable[[str], list[str]]
    error_body: Callable[[str, int, str, str | None], dict[str, Any]]

    def cap(self, path: str) -> tuple[int, str]:
        """The body cap of a path and what to call that body in an error."""
        if path.rstrip("/") == "/v1/uploads":
            return self.max_upload_bytes + MULTIPART_ROOM, "upload"
        return self.max_body_bytes, "request body"


@dataclass
class EdgeGuard:
    """ASGI middleware enforcing `EdgeLimits` before the app sees a request's body."""

    app: ASGIApp
    limits: EdgeLimits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            allowed = self.limits.methods(scope["path"])
            if allowed:  # what this path answers, without a body and without the token (nothing is revealed)
                await send({"type": "http.response.start", "status": 204,
                            "headers": [(b"allow", ", ".join(allowed).encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope["path"]

        async def reply(status: int, message: str, field: str | None = None,
                        extra: dict[str, str] | None = None) -> None:
            await _answer(send, status, self.limits.error_body(path, status, message, field), extra)

        if not self._authorized(headers.get("authorization")):
            await reply(401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                        "Authorization", {"WWW-Authenticate": "Bearer"})
            return
        cap, what = self.limits.cap(path)
        declared = headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                await reply(400, "Content-Length must be a number of bytes", "Content-Length")
                return
            if int(declared) > cap:
                await reply(413, f"the {what} is {int(declared)} bytes; the limit is {cap}",
                            "file" if what == "upload" else None)
                return
        await self.app(scope, _counting(receive, cap, what), send)

    def _authorized(self, header: str | None) -> bool:
        token = self.limits.token
        if token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


def _counting(receive: Receive, cap: int, what: str) -> Receive:
    """`receive` that raises a 413 `HTTPException` (answered by the app's error handlers) as soon as the body read
    so far passes `cap`."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > cap:
                raise HTTPException(413, f"the {what} is larger than the limit of {cap} bytes")
        return message

    return counted


async def _answer(send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """A JSON error answered without reading the request body (`Connection: close`: the rest is not drained)."""
    body = json.dumps(payload).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
