"""One settings object for every entwatch command (environment variables, prefix ``ENTWATCH_``).

>>> s = Settings(broker_url="kafka://127.0.0.1:9092", storage_url="chdb:///tmp/x")
>>> s.topic("utility")
'enterprise.utility'
>>> Settings(topic_prefix="test.").topic("alerts")
'test.monitor.alerts'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
}
COMPACTED = {"registry", "risk"}


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
    rebalance_timeout: float = Field(6.0, gt=0, description="consumer group rebalance timeout, seconds")
    session_timeout: float = Field(10.0, gt=0, description="consumer group session timeout, seconds")
    log_level: str = "WARNING"
    stall_seconds: float = Field(30.0, gt=0, description="/ready answers 503 when the sink has stored nothing for "
                                 "this long while it has rows to store, or a batch is older (streams.health)")
    state_store: Literal["memory", "rocksdb"] = Field(
        "memory", description="where the worker keeps enterprise records: in RAM, or in RocksDB under data_dir")

    def state_dir(self) -> Path:
        """Faust's data directory (RocksDB tables) of this app."""
        return self.data_dir / "state" / self.app_id

    def topic(self, name: str) -> str:
        """The full topic name for a kind (``utility``) or a monitor topic (``alerts``)."""
        return self.topic_prefix + TOPICS[name]

    def effective_storage_url(self) -> str:
        return self.storage_url or f"chdb://{(self.data_dir / 'chdb').resolve()}"

    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for kafka-python and aiokafka."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker_url.replace(",", ";").split(";"))
