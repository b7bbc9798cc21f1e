"""What real departments send, written independently of ``producers/``.

Meter systems upload weekly (one message carries 7 daily readings, Monday to Sunday,
delivered the day after the week) or monthly (a month of daily readings, delivered a few
days after it); a share of uploads arrives 2-6 days late; about 1% are delivered twice;
tax returns arrive 5-15 days after the month, some corrected weeks later; social returns on
the 20th of the next month.  ``expected_daily`` gives the daily totals straight from the
events, for comparing with what storage holds.

>>> events = department_city(enterprises=3, weeks=5, seed=1)
>>> sorted({e["kind"] for e in events})
['registry', 'social', 'tax', 'utility']
>>> len(expected_daily(events))  # 3 enterprises x 2 meters x 35 days
210
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone

from streams.uscc import make_uscc

CST = timezone(timedelta(hours=8))
START = date(2024, 1, 1)  # a Monday
TOWNS = ("长安镇", "虎门镇", "塘厦镇", "松山湖", "南城街道")


def _at(day: date, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), CST)


def _month(n: int) -> date:
    """The first day of the ``n``-th month after START's."""
    return date(START.year + (START.month - 1 + n) // 12, (START.month - 1 + n) % 12 + 1, 1)


def _base(kind: str, event_id: str, uscc: str, when: datetime, source: str) -> dict:
    return {"kind": kind, "event_id": event_id, "uscc": uscc, "source": source,
            "event_time": when.isoformat(), "schema_version": 1}


def department_city(enterprises: int = 40, weeks: int = 12, seed: int = 0, monthly_share: float = 0.25,
                    late_share: float = 0.05, duplicate_share: float = 0.01) -> list[dict]:
    """The events of a small city in delivery order (by arrival time, then as generated)."""
    g = random.Random(seed)
    days = weeks * 7
    out: list[tuple[datetime, int, dict]] = []

    def deliver(at: datetime, event: dict) -> None:
        out.append((at, len(out), event))
        if g.random() < duplicate_share:
            out.append((at + timedelta(hours=g.randint(1, 72)), len(out), event))

    for n in range(enterprises):
        uscc = make_uscc(f"91441900MA{seed % 100:02d}{n:05d}")
        deliver(_at(START) - timedelta(days=1), {
            **_base("registry", f"reg-{n}", uscc, _at(START) - timedelta(days=1), "amr"),
            "name": f"东莞{n}号有限公司", "industry": "C39", "town": TOWNS[n % len(TOWNS)],
            "registered_capital_cny": 1e6, "established_on": "2015-06-01", "status": "active"})
        level = g.uniform(50, 500)
        monthly = g.random() < monthly_share
        for utility, unit in (("electricity", "kWh"), ("water", "m3")):
            span = 28 if monthly else 7
            for first in range(0, days, span):
                covered = [START + timedelta(days=d) for d in range(first, min(first + span, days))]
                readings = [{"start": _at(d).isoformat(), "end": _at(d + timedelta(days=1)).isoformat(),
                             "amount": round(level * g.uniform(0.8, 1.2) * (0.4 if d.weekday() >= 5 else 1), 3),
                             "estimated": g.random() < 0.02} for d in covered]
                sent = _at(covered[-1] + timedelta(days=1), 2)
                if g.random() < late_share:
                    sent += timedelta(days=g.randint(2, 6))
                deliver(sent, {**_base("utility", f"{utility[:2]}-{n}-{first}", uscc, sent, f"{utility}-co"),
                               "utility": utility, "unit": unit, "meter_id": f"{utility[0]}{n}",
                               "readings": readings})
        for month in range(days // 31):
            first, following = _month(month), _month(month + 1)
            period = first.strftime("%Y-%m")
            filed = _at(following + timedelta(days=g.randint(4, 14)), 10)
            sales = round(level * 30 * 12.5 * g.uniform(0.9, 1.1), 2)
            deliver(filed, {**_base("tax", f"tax-{n}-{month}", uscc, filed, "tax"), "period": period,
                            "declared_sales_cny": sales, "tax_paid_cny": round(sales * 0.013, 2)})
            if g.random() < 0.1:
                fixed = filed + timedelta(days=20)
                deliver(fixed, {**_base("tax", f"tax-{n}-{month}-fix", uscc, fixed, "tax"), "period": period,
                                "declared_sales_cny": round(sales * 1.05, 2), "tax_paid_cny": round(sales * 0.014, 2)})
            social = _at(following + timedelta(days=19), 9)
            deliver(social, {**_base("social", f"soc-{n}-{month}", uscc, social, "hrss"), "period": period,
                             "insured_headcount": 40 + n % 7, "contributions_cny": 40000.0})
    out.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in out]


def expected_daily(events) -> dict[tuple[str, str, date], tuple[float, int]]:
    """(uscc, utility, local day) -> (total amount, readings), each event_id counted once
    (the readings here are whole local days)."""
    seen: set[str] = set()
    daily: dict = defaultdict(lambda: [0.0, 0])
    for e in events:
        if e["kind"] != "utility" or e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        for r in e["readings"]:
            day = datetime.fromisoformat(r["start"]).astimezone(CST).date()
            total = daily[(e["uscc"], e["utility"], day)]
            total[0] += r["amount"]
            total[1] += 1
    return {k: (v[0], v[1]) for k, v in daily.items()}
