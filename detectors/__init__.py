"""Pure detection logic: no Kafka, Faust, ClickHouse or Prometheus imports.

The public pieces (see docs/DETECTION.md):

- ``EnterpriseDetectors`` (detectors.enterprise): the eight rule families for one enterprise
- ``Cohorts`` (detectors.cohorts): peer statistics; ``CityCohorts`` (detectors.citywide):
  the city's cohorts merged from every partition's contributions, and the cohort watermark
- ``AlertBook`` (detectors.alerts): the alert lifecycle and SPEC §5 alert messages
- ``RiskScore`` (detectors.risk): risk 0–100 and the supervision list
- ``EventClock`` (detectors.days): the event-time watermark that closes days
- ``UnivariateDetector``, ``ThresholdFilter`` (detectors.univariate): for any series
- ``PartitionDriver`` (detectors.partition): the one detection driver (records, clock,
  day-major closing) that the worker, the evaluation and the tests run; ``PartitionClock``
  (detectors.clock); ``run_events`` (detectors.city): a city through it in one process
- ``EnterpriseState`` (detectors.record): an enterprise's aggregates (daily totals, returns)
"""
