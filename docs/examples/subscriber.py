"""Follow monitor.alerts, check each message against its schema, keep a table of open alerts.

    python docs/examples/subscriber.py --broker 127.0.0.1:9092 [--idle 5]

Delivery is at least once, so a message may come twice, or an older state after a newer
one; ce_sequence (the alert's revision, zero-padded) says which is later. See
docs/SUBSCRIBING.md.  Needs aiokafka and jsonschema.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from jsonschema import Draft202012Validator

SCHEMA = json.loads((Path(__file__).parents[2] / "deploy" / "schemas" / "alert.v1.json").read_text("utf-8"))


async def follow(broker: str, topic: str, idle: float | None) -> dict[str, dict]:
    check = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
    open_alerts: dict[str, dict] = {}  # alert_id -> its latest message, while it is open
    applied: dict[str, str] = {}  # alert_id -> ce_sequence of the latest message applied
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int((idle or 1) * 1000))
            if not batch and idle:
                return open_alerts
            for record in (r for records in batch.values() for r in records):
                headers = {name: value.decode() for name, value in record.headers}
                alert = json.loads(record.value)
                if not check.is_valid(alert):
                    print(f"offset {record.offset} does not match alert.v1.json: skipped", file=sys.stderr)
                    continue
                if headers["ce_sequence"] <= applied.get(alert["alert_id"], ""):
                    continue  # a duplicate, or an older state of the alert
                applied[alert["alert_id"]] = headers["ce_sequence"]
                if alert["status"] == "open":
                    open_alerts[alert["alert_id"]] = alert
                else:  # resolved or withdrawn
                    open_alerts.pop(alert["alert_id"], None)
                print(headers["ce_type"], alert["alert_id"], alert["rule"], file=sys.stderr)
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="127.0.0.1:9092", help="bootstrap servers, host:port")
    parser.add_argument("--topic", default="monitor.alerts")
    parser.add_argument("--idle", type=float, help="stop after this many seconds without a message")
    args = parser.parse_args()
    table = asyncio.run(follow(args.broker, args.topic, args.idle))
    for alert in sorted(table.values(), key=lambda a: a["detected_at"]):
        print(json.dumps(alert, ensure_ascii=False))  # the open alerts, one JSON line each
