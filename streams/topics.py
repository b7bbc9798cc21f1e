"""Creating the SPEC §3 topics with their configs (idempotent)."""

from __future__ import annotations

from streams.settings import COMPACTED, INTERNAL_TOPICS, TOPICS, Settings

# The largest dead letter entwatch publishes (value, key and headers): under Kafka's default
# message.max.bytes (1,048,588) with room to spare; larger ones are cut and carry a digest.
DEADLETTER_MAX_BYTES = 1_000_000


def topic_configs(name: str) -> dict[str, str]:
    """Kafka configs for a topic: compaction for registry, risk and cohorts, a week elsewhere."""
    if name in COMPACTED:
        return {"cleanup.policy": "compact"}
    return {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def ensure_topics(settings: Settings, replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers(), request_timeout_ms=10000,
                             **settings.kafka_python_security())
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(settings.topic(name), settings.partitions, replication, topic_configs=topic_configs(name))
            for name in (*TOPICS, *INTERNAL_TOPICS) if settings.topic(name) not in existing
        ]
        created = []
        for topic in wanted:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
