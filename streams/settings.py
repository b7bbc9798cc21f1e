"""One settings object for every entwatch command (environment variables, prefix ``ENTWATCH_``).

>>> s = Settings(broker_url="kafka://127.0.0.1:9092", storage_url="chdb:///tmp/x")
>>> s.topic("utility")
'enterprise.utility'
>>> Settings(topic_prefix="test.").topic("alerts")
'test.monitor.alerts'
"""

from __future__ import annotations

import os
import secrets
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from detectors.thresholds import Thresholds
from streams.contracts import KINDS

INPUT_KINDS = KINDS  # the contract decides the input kinds and so the input topics
TOPICS = {
    "registry": "enterprise.registry",
    "utility": "enterprise.utility",
    "tax": "enterprise.tax",
    "social": "enterprise.social",
    "complaint": "enterprise.complaint",
    "alerts": "monitor.alerts",
    "risk": "monitor.risk",
    "deadletter": "monitor.deadletter",
    "cases": "monitor.cases",  # published by the console (SPEC §9)
}
# Topics only entwatch workers read and write (not a contract for subscribers): each
# partition's contributions to the city-wide peer cohorts (streams/cohorts.py).
INTERNAL_TOPICS = {"cohorts": "monitor.cohorts"}
COMPACTED = {"registry", "risk", "cohorts"}
EXAMPLE_SECRET = "change-me"  # how every secret in .env.example starts: never accepted
SASL = ("SASL_PLAINTEXT", "SASL_SSL")


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "entwatch"


class Settings(BaseSettings):
    """Configuration of a worker, the embedded stack and the producers."""

    model_config = SettingsConfigDict(env_prefix="ENTWATCH_", env_file=".env", extra="ignore")

    broker_url: str = Field("kafka://127.0.0.1:9092", description="Kafka bootstrap, kafka://host:port[;host:port]")
    storage_url: str = Field("", description="clickhouse://user:pass@host:9000/db or chdb:///dir; empty = chdb in data_dir")
    storage_password: SecretStr | None = Field(None, description="ClickHouse password if not in the URL")
    topic_prefix: str = ""
    partitions: int = Field(4, ge=1, le=1024)
    app_id: str = "entwatch"
    data_dir: Path = Field(default_factory=default_data_dir)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(6066, ge=0, le=65535)
    timezone: str = "Asia/Shanghai"
    batch_max: int = Field(2000, ge=1, description="most messages per fetch, so per processing batch")
    fetch_max_wait_ms: int = Field(100, ge=1, le=60_000, description="longest a fetch waits at the broker for new data")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    utility_lateness_days: float = Field(
        9.0, ge=0, le=60, description="days after a local day that its meter readings may still arrive and count "
        "(weekly uploads: 9); the worker judges a day once the readings have covered time that far past it")
    meter_wait_days: int = Field(
        35, ge=0, le=40, description="days a meter's own days wait for its readings (a meter that uploads its "
        "month after the month) before they are judged as days without data (at most the 40 days of daily "
        "totals kept)")
    tax_filed_by_day: int = Field(15, ge=1, le=27, description="day of the next month by which a month's tax "
                                  "returns are filed: the day after, the month is judged against its whole cohort")
    social_filed_by_day: int = Field(20, ge=1, le=27, description="the same for social-insurance returns "
                                     "(at most 27: the review day, the day after, exists in every month)")
    cohort_idle_seconds: float = Field(
        10.0, gt=0, description="seconds without input after which a partition's clock follows the whole city's "
        "meter readings (the end of a replay); data of that partition arriving later about days closed meanwhile "
        "is judged late (docs/STREAMING.md, peer cohorts)")
    rebalance_timeout: float = Field(6.0, gt=0, description="consumer group rebalance timeout, seconds")
    session_timeout: float = Field(10.0, gt=0, description="consumer group session timeout, seconds")
    commit_interval: float = Field(1.0, gt=0, description="seconds between Faust's timer commits, a "
                                   "backstop: each batch is committed as soon as it is done (streams/seam.py)")
    log_level: str = "WARNING"
    stall_seconds: float = Field(30.0, gt=0, description="/ready answers 503 when the sink has stored nothing for "
                                 "this long while it has rows to store, or a batch is older (streams.health)")
    state_store: Literal["memory", "rocksdb"] = Field(
        "memory", description="where the worker keeps enterprise records: in RAM, or in RocksDB under data_dir")

    # The worker's web port and the typed read API (streams/web.py, streams/readapi.py).
    api_token: SecretStr | None = Field(None, description="bearer token of the web port (all but "
                                        "/metrics and /ready); unset: generated into data_dir/api-token")
    operator_query: bool = Field(False, description="serve POST /operator/query: free-form read-only SQL, token needed")
    reader_user: str = Field("entwatch_reader", description="read-only ClickHouse user of the read API")
    reader_password: SecretStr | None = Field(None, description="its password")
    read_timeout: float = Field(30.0, gt=0, le=3600, description="longest a read may run, seconds")
    read_max_memory_bytes: int = Field(1_000_000_000, ge=10_000_000, description="most memory a read may use")
    read_max_rows: int = Field(1_000_000, ge=1, description="most rows a read may answer (more is an error)")

    # Kafka security (docker-compose.yml documents SASL_SSL with ACLs).
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    broker_sasl_username: str | None = None
    broker_sasl_password: SecretStr | None = None
    broker_ca_file: Path | None = Field(None, description="CA certificate(s) that signed the brokers' (PEM)")
    broker_cert_file: Path | None = Field(None, description="client certificate for mutual TLS (PEM)")
    broker_key_file: Path | None = Field(None, description="its private key (PEM)")

    @field_validator("api_token")
    @classmethod
    def _token_is_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("give at least 16 characters (e.g. python -c \"import secrets; "
                             "print(secrets.token_urlsafe(32))\")")
        return token

    @model_validator(mode="after")
    def _broker_security_is_complete(self) -> "Settings":
        if self.broker_security_protocol in SASL and not (self.broker_sasl_username and self.broker_sasl_password):
            raise ValueError(f"{self.broker_security_protocol} needs ENTWATCH_BROKER_SASL_USERNAME and "
                             "ENTWATCH_BROKER_SASL_PASSWORD")
        for name in ("broker_ca_file", "broker_cert_file", "broker_key_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"ENTWATCH_{name.upper()}: no file {path}")
        return self

    def state_dir(self) -> Path:
        """Faust's data directory (RocksDB tables) of this app."""
        return self.data_dir / "state" / self.app_id

    def thresholds(self) -> Thresholds:
        """The rule thresholds, with what the deployment sets (the rest are SPEC §4's)."""
        return Thresholds(meter_wait_days=self.meter_wait_days, tax_filed_by_day=self.tax_filed_by_day,
                          social_filed_by_day=self.social_filed_by_day)

    def topic(self, name: str) -> str:
        """The full topic name for a kind (``utility``) or a monitor topic (``alerts``)."""
        return self.topic_prefix + (TOPICS[name] if name in TOPICS else INTERNAL_TOPICS[name])

    def effective_storage_url(self) -> str:
        return self.storage_url or f"chdb://{(self.data_dir / 'chdb').resolve()}"

    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for kafka-python and aiokafka."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker_url.replace(",", ";").split(";"))

    # ------------------------------------------------------------ secrets

    def token_file(self) -> Path:
        """Where ``entwatch up``/``demo`` and a worker without ``ENTWATCH_API_TOKEN`` keep the token."""
        return self.data_dir / "api-token"

    def api_token_value(self, create: bool = False) -> str | None:
        """The web port's token: ``ENTWATCH_API_TOKEN``, else the token file (written, mode
        0600, with a random token when ``create`` and missing), else None."""
        if self.api_token is not None:
            return self.api_token.get_secret_value()
        path = self.token_file()
        if path.is_file():
            return path.read_text().strip() or None
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it meanwhile
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w") as out:
            out.write(token + "\n")
        return token

    def example_secrets(self) -> list[str]:
        """The settings that still hold an example secret (``change-me…`` from .env.example).

        >>> Settings(storage_url="clickhouse://w:change-me-writer@ch:9000/entwatch").example_secrets()
        ['ENTWATCH_STORAGE_URL']
        """
        values = {"ENTWATCH_STORAGE_URL": unquote(urlparse(self.storage_url).password or ""),
                  "ENTWATCH_STORAGE_PASSWORD": self.storage_password, "ENTWATCH_READER_PASSWORD": self.reader_password,
                  "ENTWATCH_API_TOKEN": self.api_token, "ENTWATCH_BROKER_SASL_PASSWORD": self.broker_sasl_password}
        return [name for name, value in values.items()
                if (value.get_secret_value() if isinstance(value, SecretStr) else value or "").lower()
                .startswith(EXAMPLE_SECRET)]

    # ------------------------------------------------------------ Kafka security

    def broker_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL and SASL_SSL (the CA file, else the system's CAs), or None."""
        if self.broker_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=str(self.broker_ca_file) if self.broker_ca_file else None)
        if self.broker_cert_file:
            context.load_cert_chain(str(self.broker_cert_file), str(self.broker_key_file) if self.broker_key_file else None)
        return context

    def faust_credentials(self):
        """Faust's ``broker_credentials`` for these settings (None for PLAINTEXT)."""
        import faust

        context = self.broker_ssl_context()
        if self.broker_security_protocol in SASL:
            return faust.SASLCredentials(username=self.broker_sasl_username, mechanism=self.broker_sasl_mechanism,
                                         password=self.broker_sasl_password.get_secret_value(), ssl_context=context)
        return faust.SSLCredentials(context) if context is not None else None

    def aiokafka_security(self) -> dict:
        """Keyword arguments for aiokafka's producers and consumers.

        >>> Settings().aiokafka_security()
        {'security_protocol': 'PLAINTEXT'}
        """
        options: dict = {"security_protocol": self.broker_security_protocol}
        context = self.broker_ssl_context()
        if context is not None:
            options["ssl_context"] = context
        if self.broker_security_protocol in SASL:
            options.update(sasl_mechanism=self.broker_sasl_mechanism, sasl_plain_username=self.broker_sasl_username,
                           sasl_plain_password=self.broker_sasl_password.get_secret_value())
        return options

    def kafka_python_security(self) -> dict:
        """Keyword arguments for kafka-python's admin client (same meaning as ``aiokafka_security``)."""
        return self.aiokafka_security()  # kafka-python takes the same names
