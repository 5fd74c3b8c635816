"""Listening sockets bound by us (not by uvicorn / pymodbus): 'address in use' is then reported
with the component's own context, and port 0 (tests) yields the real port."""

from __future__ import annotations

import socket


def bind_tcp(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening TCP socket on ``host:port``; raises OSError (socket closed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
