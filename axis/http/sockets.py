"""Listening sockets for the hub's listeners and an agency's push endpoint."""

from __future__ import annotations

import socket


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening socket; port 0 picks a free one (tests read it back). With
    ``reuse_port`` several processes listen on the same port (SO_REUSEPORT) and the kernel
    spreads new connections among them: the workers of ``axis serve --workers N``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, for a server that must know its port before it starts
    (an agency's push endpoint is registered before it listens)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
