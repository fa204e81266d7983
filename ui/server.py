"""The server's Host check: refuse requests whose ``Host`` header names another site.

A server on 127.0.0.1 is still reachable from a web page on any site through DNS rebinding:
the attacker's hostname is made to resolve to 127.0.0.1, and the browser then sends that
hostname in ``Host``. So every HTTP request and websocket upgrade must name this server:

* ``localhost``, ``127.0.0.1`` or ``[::1]`` (any port),
* the address the server is bound to (``server.address``), when it is not a wildcard,
* any IP address when the server is bound to a wildcard (``0.0.0.0`` / ``::``: the user chose
  to expose it; a rebinding attack always sends a hostname, never an IP),
* the names in ``$EMBEDDINGS_ALLOWED_HOSTS`` (comma-separated, e.g. ``explorer.lan``), for a
  server reached through a hostname.

:class:`HostCheckMiddleware` is plain ASGI; ``serve.py`` wraps ``app.py`` in it with
``st.App(..., middleware=...)``, Streamlit's supported way to add middleware.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

ALLOWED_HOSTS_ENV = "EMBEDDINGS_ALLOWED_HOSTS"
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower-cased, without port or IPv6 brackets."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:
        value = value.rsplit(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_hosts(bound_address: str | None, extra: Iterable[str] = ()) -> tuple[frozenset[str], bool]:
    """(the host names accepted, whether any IP literal is accepted) for a server on ``bound_address``."""
    names = set(LOCAL_NAMES)
    bound = (bound_address or "").strip().lower()
    any_ip = bound in WILDCARDS
    if not any_ip:
        names.add(host_name(bound) if bound.startswith("[") else bound)
    names.update(host_name(item) for item in extra if item.strip())
    return frozenset(names), any_ip


def host_is_allowed(header: str | None, names: frozenset[str], any_ip: bool) -> bool:
    if not header:
        return False
    name = host_name(header)
    return name in names or (any_ip and _is_ip(name))


def _configured_hosts() -> tuple[frozenset[str], bool]:
    from streamlit import config  # read when the first request arrives: flags are parsed by then

    extra = os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
    return allowed_hosts(config.get_option("server.address"), extra)


class HostCheckMiddleware:
    """Answer 400 (HTTP) or refuse the upgrade (websocket, HTTP 403) for a ``Host`` not allowed."""

    def __init__(self, app: ASGIApp, hosts: tuple[frozenset[str], bool] | None = None) -> None:
        self.app = app
        self._hosts = hosts

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self._hosts is None:
            self._hosts = _configured_hosts()
        header = next(
            (value.decode("latin-1") for key, value in scope.get("headers", ()) if key == b"host"), None
        )
        if host_is_allowed(header, *self._hosts):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            body = b"Invalid host header\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
