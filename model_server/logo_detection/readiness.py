"""Server readiness that reports the model: `GET /v2/health/ready`, the readiness probe.

KServe answers its server-ready route with True as soon as the port is open, whatever its
models say. The Open Inference Protocol defines server readiness as every model being ready, and
Kubernetes routes traffic by it, so here it asks each registered model's `healthy()`, as the
per-model route (`GET /v1/models/<name>`) already does: a stopped model, or one whose batcher
would not score a request, takes the replica out of the Service until it is back.
"""

from __future__ import annotations

from kserve import ModelServer
from kserve.protocol.dataplane import DataPlane


class ModelsReadyDataPlane(DataPlane):
    """KServe's data plane, whose server readiness requires every registered model ready."""

    async def ready(self) -> bool:
        models = list(self.model_registry.get_models().values())
        if not models or not await super().ready():
            return False
        return all([await model.healthy() for model in models])


def report_models_in_server_readiness(server: ModelServer) -> None:
    """Give `server` the data plane above, over the same model registry; before `start()`,
    which builds the HTTP routes on `server.dataplane`."""
    server.dataplane = ModelsReadyDataPlane(model_registry=server.registered_models)
