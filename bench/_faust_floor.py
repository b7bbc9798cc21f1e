"""The Faust floor of the pipeline benchmark: a Faust agent on the worker's consumer (the
same ``WorkerApp``, batch call and fetch wait) that only JSON-decodes each message.

    python bench/_faust_floor.py BOOTSTRAP EXPECTED DATADIR TOPIC...

Prints {"seconds": ..., "messages": ...} (first batch to the last message) and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time

import orjson

from streams.app import WorkerApp


def main() -> None:
    bootstrap, expected, datadir, topics = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    app = WorkerApp("bench-faust-floor", broker=f"kafka://{bootstrap}", store="memory://", datadir=datadir,
                    web_enabled=False, topic_partitions=4, topic_disable_leader=True,
                    consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw",
                    consumer_max_fetch_size=8 * 1024 * 1024)
    app.fetch_max_wait_ms, app.bootstrap = 100, bootstrap
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "first": None}

    @app.agent(source)
    async def decode(stream):
        async for events in stream.take_events(2000, within=0.2):
            if seen["first"] is None:
                seen["first"] = time.perf_counter()
            for event in events:
                orjson.loads(event.message.value)
            seen["n"] += len(events)
            if seen["n"] >= expected:
                print(json.dumps({"seconds": time.perf_counter() - seen["first"], "messages": seen["n"]}), flush=True)
                os._exit(0)

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
