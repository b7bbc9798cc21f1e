"""The enterprise chart's expected level and band (the utility rules' own baseline) and the risk
score per day, in process (the fixtures of test_console)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from tests.unit import test_console
from tests.unit.test_console import USCC, log_in, started_console


@pytest.fixture
def console():
    return started_console()


def chart_of(page: str) -> dict:
    return json.loads(re.search(r'id="chart-data">(.*?)</script>', page, re.S).group(1))


def test_the_chart_carries_the_rules_expected_level_and_band_and_the_risk_per_day(console, monkeypatch):
    client, _, _ = console
    days = [date(2024, 4, 1) + timedelta(days=i) for i in range(60)]
    monkeypatch.setattr(test_console, "SERIES", [
        {"day": d.isoformat(), "utility": "electricity", "amount": 1000.0 + d.day % 3, "readings": 24, "estimated": 0}
        for d in days])
    log_in(client, "li", "analyst password")
    data = chart_of(client.get(f"/enterprise/{USCC}").text)
    expected, band = data["expected"]["electricity"], data["band"]["electricity"]
    assert len(expected) > 20 and set(band) == set(expected) and "2024-04-01" not in expected  # learning first
    last = max(expected)
    assert band[last][0] < expected[last] < band[last][1] and band[last] == [0.3 * expected[last], 3 * expected[last]]
    assert data["water"] == {} and data["expected"]["water"] == {}
    assert data["risk"] == [["2024-03-10", 67.5], ["2024-03-12", 81.0]]
