"""Pure detection logic: no Kafka, Faust, ClickHouse or Prometheus imports."""
