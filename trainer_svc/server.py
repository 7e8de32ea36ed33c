"""The trainer gRPC server factory."""

from __future__ import annotations

from synthtune.grpc_server import Registration, ServerHandle, create_server
from synthtune.trainer.v1 import trainer_pb2_grpc
from trainer_svc.config import TrainerSettings
from trainer_svc.manager import RunManager
from trainer_svc.servicer import SERVICE_NAME, TrainerServicer


def build_server(settings: TrainerSettings, manager: RunManager, address: str | None = None) -> ServerHandle:
    """Build (not start) the server on `address` (default: settings.listen; "host:0" picks a port)."""
    registration = Registration(
        add=trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
        servicer=TrainerServicer(manager),
        full_name=SERVICE_NAME,
    )
    return create_server(address or settings.listen, [registration], token=settings.grpc_token,
                         tls_cert=settings.grpc_tls_cert, tls_key=settings.grpc_tls_key)
