"""What stands between a request and the app: sign-in attempts are limited per user name and
per address, and the API description and Gradio's monitoring pages are for admins only.

It is plain ASGI middleware so that it sees Gradio's own `/login` route (mounted inside our
FastAPI app) before Gradio does: Gradio's auth callable is told a name and a password, never
who is asking.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

log = logging.getLogger("clipcite.web")

WINDOW = 15 * 60  # seconds a failed sign-in counts against its user name and address
MAX_PER_USER = 5  # failures per user name in WINDOW, then that name waits (even with the
MAX_PER_ADDRESS = 20  # right password); a whole office may share one address
_MAX_KEYS = 10_000  # names and addresses remembered at most (an attacker can invent names)
_MAX_LOGIN_BODY = 16 * 1024
# Routes that describe or measure the app rather than serve a person: admins only.
ADMIN_ONLY = ("/openapi.json", "/docs", "/redoc", "/gradio_api/openapi.json",
              "/gradio_api/docs", "/monitoring", "/gradio_api/monitoring")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class AttemptLimiter:
    """Failed attempts per key in a sliding window; at `limit` failures the key waits until
    the oldest of them leaves the window."""

    def __init__(self, limit: int, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> float:
        """Seconds before `key` may try again; 0 when it may try now."""
        with self._lock:
            times = self._recent(key)
            if len(times) < self.limit:
                return 0.0
            return max(0.0, times[0] + self.window - self.clock())

    def failed(self, key: str) -> None:
        with self._lock:
            if len(self._failures) >= _MAX_KEYS:
                self._forget_old()
            times = self._failures.setdefault(key, deque(maxlen=self.limit))
            times.append(self.clock())

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.get(key, deque())
        cutoff = self.clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def _forget_old(self) -> None:
        cutoff = self.clock() - self.window
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= cutoff]:
            del self._failures[key]
        while len(self._failures) >= _MAX_KEYS:  # all recent: drop the oldest-touched
            del self._failures[min(self._failures, key=lambda k: self._failures[k][-1])]


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def again() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _respond(send: Send, status: int, detail: str, headers: dict | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def wait_words(seconds: float) -> str:
    minutes = max(1, int(seconds // 60) + (1 if seconds % 60 else 0))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class Guard:
    """ASGI middleware: sign-in limits and admin-only routes (see the module's docstring)."""

    def __init__(self, app: Any, *, is_admin: Callable[[Request], bool],
                 per_user: AttemptLimiter | None = None,
                 per_address: AttemptLimiter | None = None) -> None:
        self.app, self.is_admin = app, is_admin
        self.per_user = per_user or AttemptLimiter(MAX_PER_USER)
        self.per_address = per_address or AttemptLimiter(MAX_PER_ADDRESS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/") or "/"
        if path.startswith(ADMIN_ONLY) and not self.is_admin(Request(scope)):
            return await _respond(send, 404, "Not Found")
        if scope["method"] == "POST" and path in ("/login", "/gradio_api/login"):
            return await self._sign_in(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > _MAX_LOGIN_BODY:
                return await _respond(send, 413, "The sign-in form is too large.")
            if not message.get("more_body"):
                break
        try:
            form = await Request(scope, _replay(body, receive)).form()
            name = str(form.get("username") or "").strip()
        except Exception:  # noqa: BLE001 - Gradio answers a malformed form itself
            log.warning("unreadable sign-in form", exc_info=True)
            name = ""
        address = (scope.get("client") or ("?",))[0]
        wait = max(self.per_address.wait(address), self.per_user.wait(name))
        if wait > 0:
            log.warning("sign-in refused without checking: too many failures (user %r, "
                        "address %s)", name, address)
            return await _respond(
                send, 429, f"Too many failed sign-ins. Wait {wait_words(wait)} and try again.",
                {"retry-after": str(int(wait) + 1)})
        status: list[int] = []

        async def noting(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, _replay(body, receive), noting)
        if status and status[0] == 200:
            self.per_user.succeeded(name)  # the address keeps its count: one valid account
        elif status and 400 <= status[0] < 500:  # must not reset an address's failures
            log.warning("failed sign-in for user %r from %s", name, address)
            self.per_user.failed(name)
            self.per_address.failed(address)
