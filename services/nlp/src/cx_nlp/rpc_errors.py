"""The error the adapter's helpers raise and its RPC handlers turn into a gRPC status."""

from __future__ import annotations

import grpc


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
