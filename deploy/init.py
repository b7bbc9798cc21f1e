"""One-shot setup for a deployment (docker-compose.yml's `init` service): create the
SPEC §3 topics with ENTWATCH_PARTITIONS partitions and apply deploy/clickhouse/schema.sql.
Idempotent: run it again after an upgrade. The workers do the same on start; running it
once first means N workers do not race to create topics.

It refuses to start while a secret is still .env.example's ``change-me…`` value (the
ENTWATCH_* secrets, and the deployment's other passwords and token when compose passes them).

    python deploy/init.py            # settings from ENTWATCH_* (see streams/settings.py)
"""

from __future__ import annotations

import os
import sys
import time

from pydantic import ValidationError

from streams.settings import EXAMPLE_SECRET, Settings
from streams.storage import apply_schema, open_storage
from streams.topics import ensure_topics


# The deployment's secrets that docker-compose.yml hands to this job, besides the ENTWATCH_* ones.
DEPLOYMENT_SECRETS = ("CLICKHOUSE_WRITER_PASSWORD", "CLICKHOUSE_READER_PASSWORD", "CLICKHOUSE_GRAFANA_PASSWORD",
                      "GRAFANA_ADMIN_PASSWORD")


def example_secrets(settings: Settings, environ=os.environ) -> list[str]:
    """The names of the secrets still holding an example value (never their values)."""
    others = [name for name in DEPLOYMENT_SECRETS if environ.get(name, "").lower().startswith(EXAMPLE_SECRET)]
    return settings.example_secrets() + others


def main(attempts: int = 30, pause: float = 2.0) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        print(f"init refused: setting {'.'.join(map(str, err['loc'])) or 'ENTWATCH_*'}: {err['msg']}", file=sys.stderr)
        return 2
    refused = example_secrets(settings)
    if refused:
        print(f"init refused: {', '.join(refused)} still the example value from .env.example (change-me…); "
              "set real secrets in .env", file=sys.stderr)
        return 2
    password = settings.storage_password.get_secret_value() if settings.storage_password else None
    for attempt in range(1, attempts + 1):
        try:
            created = ensure_topics(settings, replication=int(os.environ.get("ENTWATCH_REPLICATION", "1")))
            storage = open_storage(settings.effective_storage_url(), password)
            try:
                apply_schema(storage)
            finally:
                storage.close()
            print(f"topics created: {', '.join(created) or 'none (all existed)'}; schema applied to "
                  f"{settings.effective_storage_url().split('@')[-1]}")
            return 0
        except Exception as exc:
            if attempt == attempts:
                print(f"init failed after {attempts} attempts: {str(exc).splitlines()[0][:300]}. "
                      "Check that Kafka and ClickHouse are healthy (docker compose ps).", file=sys.stderr)
                return 1
            time.sleep(pause)
    return 1


if __name__ == "__main__":
    sys.exit(main())
