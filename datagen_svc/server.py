"""The datagen gRPC server factory."""

from __future__ import annotations

from datagen_svc.config import DatagenSettings
from datagen_svc.manager import JobManager
from datagen_svc.servicer import SERVICE_NAME, DatagenServicer
from synthtune.datagen.v1 import datagen_pb2_grpc
from synthtune.grpc_server import Registration, ServerHandle, create_server


def build_server(
    settings: DatagenSettings, address: str | None = None, *, manager: JobManager | None = None
) -> ServerHandle:
    """Build (not start) the server on `address` (default: settings.listen; "host:0" picks a port).

    Without `manager` one is made and recovered (interrupted jobs marked failed) here;
    pass your own to stop its jobs on shutdown (`await manager.shutdown()`).
    """
    if manager is None:
        manager = JobManager(settings=settings)
        manager.recover()
    registration = Registration(
        add=datagen_pb2_grpc.add_DatagenServiceServicer_to_server,
        servicer=DatagenServicer(manager),
        full_name=SERVICE_NAME,
    )
    return create_server(
        address or settings.listen,
        [registration],
        token=settings.grpc_token,
        tls_cert=settings.grpc_tls_cert,
        tls_key=settings.grpc_tls_key,
    )
