"""CSV replay: a department's export mapped onto the contract, row by row, with file:line reports."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import orjson
import pytest

from producers.mapping import COMMON, FIELDS, Mapping, MappingError, read_csv
from producers.replay import read_lines
from producers.simulator import SimulationConfig, write_files
from streams.cli import main
from streams.contracts import KINDS, validate_event

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
A, B = "91441900MA4UH12341", "91441900MA52DN204C"


def write_csv(path: Path, header: list[str], rows: list[list], encoding: str = "utf-8") -> Path:
    with path.open("w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def sent(lines) -> list[dict]:
    return [orjson.loads(line.raw) for line in lines if line.rejection is None]


def problems(lines) -> list[tuple[str, str]]:
    return [(line.where("f"), line.rejection.reason) for line in lines if line.rejection is not None]


# -- round trip -----------------------------------------------------------------------------------------
def to_rows(event: dict) -> list[dict]:
    """An event as export rows: one per reading for utility, one otherwise."""
    if event["kind"] != "utility":
        return [{k: v for k, v in event.items() if k != "kind"}]
    head = {k: v for k, v in event.items() if k not in ("kind", "readings")}
    return [{**head, **r} for r in event["readings"]]


def cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("city")
    config = SimulationConfig(enterprises=60, days=45, history_months=1, electricity_interval="hour",
                              start=date(2024, 3, 1), malformed_share=0, estimated_share=0.05)
    write_files(config, out / "e.jsonl", out / "t.jsonl")
    return [orjson.loads(line.raw) for line in read_lines(out / "e.jsonl") if line.rejection is None]


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_to_csv_and_mapped_back_gives_identical_events(city, kind, tmp_path):
    events = [e for e in city if e["kind"] == kind][:400]
    events.insert(2, events[1])    # a duplicate delivery right after the original
    header = [f for f in {**COMMON, **FIELDS[kind]} if any(f in row for e in events for row in to_rows(e))]
    rows = [[cell(row.get(f)) for f in header] for e in events for row in to_rows(e)]
    path = write_csv(tmp_path / f"{kind}.csv", header, rows)

    back = sent(read_csv(path, Mapping.from_dict({"kind": kind})))

    assert back == [{**e, "schema_version": 1} for e in events] and len(back) > 0
    assert [validate_event(e) for e in back] == [validate_event(e) for e in events]


# -- a department's own columns ---------------------------------------------------------------------------
def test_chinese_export_columns_dates_units_and_value_maps(tmp_path):
    path = write_csv(tmp_path / "tax.csv", ["纳税人识别号", "所属期", "申报日期", "销售额(万元)", "状态"],
                     [[A, "2024年3月", "2024/4/15 10:32", "1,286.4", "x"], [B, "202403", "2024年4月8日", "0", "x"]])
    mapping = Mapping.from_dict({"kind": "tax", "constants": {"source": "dg-tax", "tax_paid_cny": 0},
                                 "fields": {"uscc": "纳税人识别号", "period": "所属期", "event_time": "申报日期",
                                            "declared_sales_cny": {"column": "销售额(万元)", "scale": 10000}}})
    events = sent(read_csv(path, mapping))
    assert [(e["period"], e["event_time"], e["declared_sales_cny"]) for e in events] == [
        ("2024-03", "2024-04-15T10:32:00+08:00", pytest.approx(12_864_000.0)),
        ("2024-03", "2024-04-08T00:00:00+08:00", 0.0)]
    assert all(e["event_id"].startswith("csv-") and e["source"] == "dg-tax" for e in events)


def test_without_an_event_id_column_the_id_is_the_same_on_every_replay(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["uscc", "period", "insured_headcount", "contributions_cny", "event_time"],
                     [[A, "2024-03", "12", "9000", "2024-04-10T09:00:00+08:00"]])
    mapping = Mapping.from_flags("social", [], ["source=hrss"])
    first, second = sent(read_csv(path, mapping)), sent(read_csv(path, mapping))
    assert first == second and first[0]["event_id"].startswith("csv-")


def test_utility_rows_of_one_meter_and_day_form_one_upload(tmp_path):
    rows = [[A, "M1", f"2024-03-0{d} {h:02d}:00", "10.5"] for d in (1, 2) for h in range(3)]
    path = write_csv(tmp_path / "u.csv", ["信用代码", "户号", "开始", "电量"], rows)
    mapping = Mapping.from_flags("utility", ["信用代码=uscc", "户号=meter_id", "开始=start", "电量=amount"],
                                 ["utility=electricity", "source=power"], reading_span="1h")
    events = sent(read_csv(path, mapping))
    assert [len(e["readings"]) for e in events] == [3, 3]
    assert events[0]["unit"] == "kWh" and events[0]["event_time"] == "2024-03-01T03:00:00+08:00"
    assert events[1]["readings"][0] == {"start": "2024-03-02T00:00:00+08:00", "end": "2024-03-02T01:00:00+08:00",
                                        "amount": 10.5}


# -- bad rows -----------------------------------------------------------------------------------------------
def test_bad_rows_are_reported_at_their_line_and_the_rest_goes_on(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "uscc,period,declared_sales_cny,tax_paid_cny,event_time,note\n"
        f"{A},2024-03,100,13,2024-04-10 09:00,ok\n"                    # 2 fine
        f"{A},2024-03,abc,13,2024-04-10 09:00,x\n"                     # 3 not a number
        f"{B[:-1]}X,2024-03,100,13,2024-04-10 09:00,x\n"               # 4 check digit
        f"{A},2024-13,100,13,2024-04-10 09:00,x\n"                     # 5 no such month
        f"{A},2024-03,100,13\n"                                         # 6 too few cells
        f'{A},2024-03,-5,13,2024-04-10 09:00,"two\nlines"\n'            # 7-8 negative, a quoted newline
        "\n"
        f"{B},2024-03,100,13,2099-01-01 00:00,x\n"                     # 10 in the future
        f"{B},2024-03,100,13,yesterday,x\n"                            # 11 not a time
        f"{B},2024-02,100,13,2024-03-10 09:00,ok\n",                   # 12 fine
        encoding="utf-8")
    lines = list(read_csv(path, Mapping.from_flags("tax", [], ["source=tax"])))
    assert problems(lines) == [("f:3", "invalid_declared_sales_cny"), ("f:4", "invalid_uscc"),
                               ("f:5", "invalid_period"), ("f:6", "invalid_row"),
                               ("f:7-8", "invalid_declared_sales_cny"), ("f:10", "future_event_time"),
                               ("f:11", "invalid_event_time")]
    assert [e["period"] for e in sent(lines)] == ["2024-03", "2024-02"]


def test_a_bad_reading_is_reported_at_its_own_row_and_its_upload_keeps_the_others(tmp_path):
    rows = [[A, "M1", f"2024-03-01T0{h}:00:00+08:00", f"2024-03-01T0{h + 1}:00:00+08:00", a, "u-1"]
            for h, a in enumerate(["1", "-2", "3", "nan"])]
    path = write_csv(tmp_path / "u.csv", ["uscc", "meter_id", "start", "end", "amount", "event_id"], rows)
    lines = list(read_csv(path, Mapping.from_flags("utility", [], ["source=p", "utility=water",
                                                                 "event_time=2024-03-02T01:00:00+08:00"])))
    assert problems(lines) == [("f:3", "invalid_readings"), ("f:5", "invalid_readings")]
    assert [line.rejection.detail.split(":")[0] for line in lines if line.rejection] == ["amount", "amount"]
    assert [r["amount"] for r in sent(lines)[0]["readings"]] == [1.0, 3.0]
    assert [line.where("f") for line in lines if line.rejection is None] == ["f:2-4"]


def test_undecodable_text_is_a_bad_row_not_a_crash(tmp_path):
    good = f"{A},2024-03,1,10,2024-04-10 09:00\n".encode()
    (tmp_path / "s.csv").write_bytes(b"uscc,period,insured_headcount,contributions_cny,event_time\n" + good
                                     + "不是UTF-8".encode("gb18030") + b",x,1,1,1\n" + good)
    lines = list(read_csv(tmp_path / "s.csv", Mapping.from_flags("social", [], ["source=hrss"])))
    assert problems(lines) == [("f:3", "invalid_encoding")] and len(sent(lines)) == 2


# -- the mapping itself: one line that says what to fix ------------------------------------------------------
@pytest.mark.parametrize("text, says", [
    ("kind: tax\nfields:\n  perod: 所属期\n", "fields.perod: not a field of a tax event; the fields are"),
    ("kind: taxes\n", "kind: 'taxes' is not a kind; write one of registry, utility, tax"),
    ("kind: tax\nfields: [uscc]\n", "fields: expected a mapping of field: value lines"),
    ("kind: tax\nfields:\n  uscc: 税号\n   period: x\n", "not valid YAML at line 4, column 10"),
    ("kind: tax\nfields:\n  period: {column: 所属期, fromat: '%Y%m'}\n", "fields.period.fromat: unknown option"),
    ("kind: tax\nfields:\n  uscc: {format: x}\n", "fields.uscc: the column name is missing"),
    ("kind: tax\nencoding: gbkk\n", "encoding: 'gbkk' is not an encoding; write e.g. utf-8 or gb18030"),
    ("kind: tax\nconstants:\n  tax_paid_cny: lots\n", "constants.tax_paid_cny: 'lots' is not a number"),
    ("kind: tax\nreading_span: 1h\n", "reading_span: only utility files have readings; remove it"),
])
def test_a_bad_mapping_file_gets_one_line_saying_where_and_what_to_fix(tmp_path, text, says):
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as err:
        Mapping.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_a_column_missing_from_the_header_is_named_with_the_header(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["税号", "期间"], [[A, "2024-03"]])
    with pytest.raises(MappingError, match=r"fields.period: column '所属期' is not in the header .*\(it has: 税号, 期间\)"):
        list(read_csv(path, Mapping.from_flags("tax", ["税号=uscc", "所属期=period"], [])))


def test_cli_bad_mapping_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "m.yaml").write_text("kind: tax\nfields:\n  perod: x\n", encoding="utf-8")
    write_csv(tmp_path / "t.csv", ["uscc"], [[A]])
    assert main(["replay", str(tmp_path / "t.csv"), "--mapping", str(tmp_path / "m.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "perod: not a field of a tax event" in err


def test_cli_csv_without_a_mapping_says_how_to_give_one(tmp_path, capsys):
    write_csv(tmp_path / "t.csv", ["uscc"], [[A]])
    assert main(["replay", str(tmp_path / "t.csv"), "--dry-run"]) == 2
    assert "give its column mapping with --mapping FILE.yaml" in capsys.readouterr().err


# -- the documented examples ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_documented_example_maps_every_row(kind, capsys):
    code = main(["replay", str(EXAMPLES / f"{kind}.csv"), "--mapping", str(EXAMPLES / f"{kind}.yaml"),
                 "--dry-run", "--quiet"])
    out = capsys.readouterr()
    assert code == 0 and "bad" not in out.out + out.err and f"({kind} " in out.out
