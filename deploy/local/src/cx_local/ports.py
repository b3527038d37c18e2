from __future__ import annotations

import socket

from cx_local.errors import LauncherError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free(port: int, what: str, env_var: str, host: str = "127.0.0.1") -> None:
    if not port_is_free(port, host):
        raise LauncherError(
            f"port {port} for {what} is busy: stop whatever listens on {host}:{port} or set {env_var} to another port"
        )
