"""Pure detection logic: no Kafka, Faust, ClickHouse or Prometheus imports.

The public pieces (see docs/DETECTION.md):

- ``EnterpriseDetectors`` (detectors.enterprise): the eight rule families for one enterprise
- ``Cohorts`` (detectors.cohorts): peer statistics, one per worker
- ``AlertBook`` (detectors.alerts): the alert lifecycle and SPEC §5 alert messages
- ``RiskScore`` (detectors.risk): risk 0–100 and the supervision list
- ``EventClock`` (detectors.days): the event-time watermark that closes days
- ``UnivariateDetector``, ``ThresholdFilter`` (detectors.univariate): for any series
- ``run_events`` (detectors.offline): the whole path offline
"""
