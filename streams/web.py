"""The worker's web port: ``/metrics``, ``/ready``, and the typed read API.

- ``/metrics`` and ``/ready`` answer anyone (Prometheus, health checks);
- everything else — including Faust's own pages — needs ``Authorization: Bearer <token>``
  (``ENTWATCH_API_TOKEN``, else the token file ``entwatch up`` writes in the data dir);
- a request with a foreign ``Origin`` (a web page the operator happens to open) is refused;
- ``GET /read`` lists the named queries, ``GET /read/<name>?param=…`` answers
  ``{"rows": [...]}`` (``streams.readapi``);
- ``POST /operator/query`` (body: one SELECT) only with ``ENTWATCH_OPERATOR_QUERY=true``:
  read-only session, no files, URLs or other servers, time, memory and row limits.

Reads run on their own threads and storage sessions (``streams.readsession``), never on
the sink's: a long read cannot hold ingestion back.  The port binds ``127.0.0.1`` unless
``ENTWATCH_METRICS_HOST`` says otherwise (the Docker image: ``0.0.0.0``, for Prometheus).
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web as aiohttp_web
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.health import readiness
from streams.readapi import UnknownQuery, bind, describe
from streams.readparams import ParamError
from streams.readsession import Limits, ReadError, ReadPool, ReadRefused, ReadTimeout, failure, open_session
from streams.settings import Settings

log = logging.getLogger("entwatch.web")

PUBLIC = frozenset({"/metrics", "/ready"})


def add_pages(app, settings: Settings) -> None:
    """Register the worker's pages on the Faust ``app``, behind the token and Origin checks."""
    token = settings.api_token_value(create=True)
    pool = ReadPool(lambda: open_session(settings), Limits.from_settings(settings))
    app.web.web_app.middlewares.append(guard(token))

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/ready")
    async def ready_page(web, request):
        """200 once this worker has partitions assigned and its state recovered, while its
        sink and batches make progress; 503 with the reasons otherwise (streams.health)."""
        verdict = readiness(app)
        return web.json(verdict.body(), status=200 if verdict.ready else 503)

    @app.page("/read")
    async def read_index(web, request):
        """The named queries and their parameters."""
        return web.json({"queries": describe()})

    @app.page("/read/{name}")
    async def read_page(web, request, name):
        """One named query: ``GET /read/alerts?town=…&limit=20`` -> ``{"rows": [...]}``."""
        repeated = sorted(k for k in set(request.query) if len(request.query.getall(k)) > 1)
        if repeated:
            return web.json({"error": f"{repeated[0]}: give it once", "param": repeated[0]}, status=400)
        try:
            bound = bind(name, dict(request.query))
        except UnknownQuery as exc:
            return web.json({"error": str(exc)}, status=404)
        except ParamError as exc:
            return web.json({"error": str(exc), "param": exc.param}, status=400)
        return await answer(web, pool.call("run", bound), f"read {name}")

    class OperatorQuery(View):
        """Free-form read-only SQL for operators (off unless ENTWATCH_OPERATOR_QUERY=true)."""

        async def post(self, request):
            if not settings.operator_query:
                return self.json({"error": "the operator query is off (ENTWATCH_OPERATOR_QUERY=true turns it on); "
                                           "use GET /read/<name>"}, status=404)
            sql = (await request.read()).decode("utf-8", errors="replace")
            return await answer(self, pool.call("operator", sql), "operator query")

    app.page("/operator/query")(OperatorQuery)

    @app.page("/query")
    async def query_gone(web, request):
        """Where the old raw-SQL endpoint went."""
        return web.json({"error": "GET /query was removed: use GET /read/<name> (GET /read lists them), or "
                                  "POST /operator/query when the operator query is on"}, status=410)


async def answer(web, reading, what: str):
    """The rows of a read as JSON, or its failure with a status that says whose it is."""
    try:
        rows = await reading
    except ReadRefused as exc:
        return web.json({"error": str(exc)}, status=400)
    except ReadTimeout as exc:
        return web.json({"error": str(exc)}, status=504)
    except ReadError as exc:
        return web.json({"error": str(exc)}, status=503)
    except Exception as exc:  # ClickHouse refused the query (a limit, a syntax error, a login)
        first = failure(exc)
        status = 504 if first.startswith("Code: 159.") else 400
        log.info("%s failed: %s", what, first)
        return web.json({"error": first}, status=status)
    return web.json({"rows": rows})


def guard(token: str):
    """aiohttp middleware: a foreign Origin is refused everywhere; a token is needed but on ``PUBLIC`` pages."""
    expected = f"Bearer {token}".encode()

    @aiohttp_web.middleware
    async def check(request, handler):
        origin = request.headers.get("Origin")
        if (origin is not None and origin != f"{request.scheme}://{request.host}") or \
                request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return aiohttp_web.json_response({"error": "cross-origin requests are refused"}, status=403)
        if request.path in PUBLIC:
            return await handler(request)
        given = request.headers.get("Authorization", "").strip().encode()
        if not hmac.compare_digest(given, expected):
            return aiohttp_web.json_response(
                {"error": "this page needs Authorization: Bearer <token> (ENTWATCH_API_TOKEN, or the api-token "
                          "file in the worker's data dir)"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check
