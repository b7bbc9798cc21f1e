# entwatch worker image: `docker compose up` runs it as `entwatch worker`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY producers producers
COPY detectors detectors
COPY deploy deploy
RUN pip install --no-cache-dir . && useradd --system --home /app entwatch
USER entwatch
# The web port binds all interfaces inside the container so Prometheus (compose network) can scrape it;
# only /metrics and /ready answer without ENTWATCH_API_TOKEN (docs/SECURITY.md). Nothing publishes it.
ENV ENTWATCH_METRICS_HOST=0.0.0.0 ENTWATCH_DATA_DIR=/tmp/entwatch ENTWATCH_SCHEMA_FILE=/app/deploy/clickhouse/schema.sql
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --retries=6 CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/ready', timeout=2)"
ENTRYPOINT ["entwatch"]
CMD ["worker"]
