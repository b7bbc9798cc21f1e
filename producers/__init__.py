"""Producers put events on Kafka: file replay/backfill and the city simulator."""
