"""The worker's web port: ``/metrics``, ``/ready`` and ``/query``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.health import readiness
from streams.sink import Sink
from streams.storage import Storage

READ_ONLY = ("select", "with", "show", "describe", "desc", "exists")


def add_pages(app, sink: Sink, store: Storage) -> None:
    """Register the worker's pages on the Faust ``app``."""
    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/ready")
    async def ready_page(web, request):
        """200 once this worker has partitions assigned and its state recovered, while its
        sink and batches make progress; 503 with the reasons otherwise (streams.health)."""
        verdict = readiness(app)
        return web.json(verdict.body(), status=200 if verdict.ready else 503)

    @app.page("/query")
    async def query_page(web, request):
        """Read-only SQL against this worker's storage (how other commands read chDB)."""
        sql = request.query.get("sql", "").strip()
        if not sql.lower().startswith(READ_ONLY) or ";" in sql.rstrip(";"):
            return web.json({"error": "only one read-only statement (SELECT, WITH, SHOW, DESCRIBE)"}, status=400)
        try:
            rows = await sink.call(store.query, sql)
        except Exception as exc:
            return web.json({"error": str(exc).splitlines()[0][:500]}, status=400)
        return web.json({"rows": rows})
