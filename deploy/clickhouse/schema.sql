-- entwatch storage schema. Applied by the worker on start (statements separated by ";").
-- {db} is the database name. Written for ClickHouse 18.16 and newer: on servers that
-- support it (>= 19.x, chDB), "String" columns marked /*lc*/ become LowCardinality(String).
-- Idempotency comes from the table design: ReplacingMergeTree keyed on natural ids,
-- read with FINAL (or argMax). A replayed or redelivered event rewrites the same key.

CREATE DATABASE IF NOT EXISTS {db};

-- Every accepted event as it was sent (a complaint re-encoded with its text masked), for drill-down.
CREATE TABLE IF NOT EXISTS {db}.events (
    kind String /*lc*/,
    uscc String,
    event_id String,
    source String /*lc*/,
    event_time DateTime('UTC'),
    payload String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (kind, uscc, event_id);

-- Daily consumption per enterprise and utility (local days, Asia/Shanghai by default).
-- version = readings folded in so far: the fullest row wins.
CREATE TABLE IF NOT EXISTS {db}.utility_daily (
    uscc String,
    utility String /*lc*/,
    day Date,
    amount Float64,
    readings UInt32,
    estimated UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (uscc, utility, day);

-- Monthly tax returns: the latest event_time per (uscc, period) wins (corrections).
CREATE TABLE IF NOT EXISTS {db}.tax_monthly (
    uscc String,
    period Date,
    declared_sales_cny Float64,
    tax_paid_cny Float64,
    event_id String,
    event_time DateTime('UTC')
) ENGINE = ReplacingMergeTree(event_time)
ORDER BY (uscc, period);

-- Monthly social insurance: the latest event_time per (uscc, period) wins.
CREATE TABLE IF NOT EXISTS {db}.social_monthly (
    uscc String,
    period Date,
    insured_headcount UInt32,
    contributions_cny Float64,
    event_id String,
    event_time DateTime('UTC')
) ENGINE = ReplacingMergeTree(event_time)
ORDER BY (uscc, period);

-- Enterprise master data: the latest registry event per USCC wins.
CREATE TABLE IF NOT EXISTS {db}.enterprises (
    uscc String,
    name String,
    industry String /*lc*/,
    town String /*lc*/,
    registered_capital_cny Float64,
    established_on String,  -- YYYY-MM-DD: a Date on 18.16 starts at 1970, older enterprises exist
    status String /*lc*/,
    key_enterprise UInt8,
    event_time DateTime('UTC')
) ENGINE = ReplacingMergeTree(event_time)
ORDER BY uscc;

-- Complaints (text masked before it gets here).
CREATE TABLE IF NOT EXISTS {db}.complaints (
    uscc String,
    complaint_id String,
    event_id String,
    event_time DateTime('UTC'),
    category String /*lc*/,
    channel String /*lc*/,
    text String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (uscc, complaint_id);

-- One row per dead-lettered message, keyed by where it came from.
CREATE TABLE IF NOT EXISTS {db}.deadletters (
    topic String /*lc*/,
    partition UInt32,
    offset UInt64,
    stage String /*lc*/,
    reason String /*lc*/,
    detail String,
    received_at DateTime('UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset);

-- Alerts (SPEC §5): one row per alert_id, the highest revision wins.  Ordered by (uscc, alert_id)
-- (alert_id is a hash of uscc, rule and window_start: the same replacing key as alert_id alone),
-- so that one enterprise's alerts are a few granules; partitioned by the month of detected_at
-- (fixed for an alert: every revision repeats its first detection), so that the alert inbox
-- reads only the recent months.  FINAL still merges across partitions.  A table of the older
-- layout (ORDER BY alert_id) is rebuilt on start by streams.storage.apply_schema.
CREATE TABLE IF NOT EXISTS {db}.alerts (
    alert_id String,
    uscc String,
    enterprise_name String,
    industry String /*lc*/,
    town String /*lc*/,
    rule String /*lc*/,
    severity String /*lc*/,
    status String /*lc*/,
    window_start Date,
    window_end Date,
    detected_at DateTime('UTC'),
    score Float64,
    observed Float64,
    expected Float64,
    evidence String,
    explanation_zh String,
    explanation_en String,
    revision UInt64
) ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(detected_at)
ORDER BY (uscc, alert_id);

-- Risk score per enterprise: the latest wins.
CREATE TABLE IF NOT EXISTS {db}.risk (
    uscc String,
    score Float64,
    level String /*lc*/,
    rules Array(String),
    updated_at DateTime('UTC'),
    revision UInt64
) ENGINE = ReplacingMergeTree(revision)
ORDER BY uscc;

-- Every risk score the worker stored, kept: the enterprise page's risk over time (the risk table
-- above keeps only the latest per enterprise).  ClickHouse fills it from each insert into risk
-- (the materialized view below); rows stored before the view existed are copied in once by
-- streams.storage.apply_schema.  Its columns are risk's (AS): one list to keep.
CREATE TABLE IF NOT EXISTS {db}.risk_history AS {db}.risk
ENGINE = ReplacingMergeTree(revision)
ORDER BY (uscc, updated_at);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.risk_history_feed TO {db}.risk_history AS
SELECT uscc, score, level, rules, updated_at, revision FROM {db}.risk;
