"""CSV replay: a department's export columns mapped onto SPEC §2 fields.

A mapping says which kind a file holds, which column feeds which field, the constants
(``source``…), and how to read dates and numbers.  It is a small YAML file
(``docs/REPLAY.md``, ``docs/examples/``) or the same thing from command-line flags:

>>> m = Mapping.from_dict({"kind": "tax", "constants": {"source": "dg-tax"},
...     "fields": {"uscc": "纳税人识别号", "period": "所属期", "event_time": "申报日期",
...                "declared_sales_cny": {"column": "销售额(万元)", "scale": 10000},
...                "tax_paid_cny": "实缴税额"}})
>>> header = ["纳税人识别号", "所属期", "申报日期", "销售额(万元)", "实缴税额"]
>>> row = ["914403001922038216", "2024年3月", "2024/4/15", "12.5", "0"]
>>> event = m.bind(header).event(row)
>>> event["period"], event["event_time"], event["declared_sales_cny"], event["event_id"][:4]
('2024-03', '2024-04-15T00:00:00+08:00', 125000.0, 'csv-')

Every cell is converted by the type its field has in the contract (money, whole number,
yes/no, date, period, timestamp, text); a cell that cannot be converted makes the row bad
(``invalid_<field>``), and the converted event is then validated exactly as a JSON Lines line.
An empty cell leaves the field out (or takes the field's ``default``).  Without an
``event_id`` column the id is a digest of the event's content, so replaying the same file
twice sends the same ids (the worker counts them once).

Utility rows carry one reading each (``start``, ``end`` or ``reading_span``, ``amount``,
``estimated``); consecutive rows are grouped into one meter upload (``group``): rows with the
same ``event_id`` when that column is mapped, otherwise rows of the same meter and local day;
``group: none`` sends one event per row.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from producers.replay import Line
from streams.contracts import KINDS, MAX_READINGS, UTILITY_UNITS, Rejection, validate_event


class MappingError(ValueError):
    """A mapping that cannot work; the message names the place and what to write instead."""


# -- the fields of each kind and how their cells are read -------------------------------------------
COMMON = {"event_id": "text", "uscc": "uscc", "source": "text", "event_time": "timestamp",
          "schema_version": "int"}
FIELDS: dict[str, dict[str, str]] = {
    "registry": {"name": "text", "industry": "code", "town": "text", "registered_capital_cny": "money",
                 "established_on": "date", "status": "text", "key_enterprise": "bool"},
    "utility": {"utility": "text", "unit": "text", "meter_id": "text",
                "start": "timestamp", "end": "timestamp", "amount": "money", "estimated": "bool"},
    "tax": {"period": "period", "declared_sales_cny": "money", "tax_paid_cny": "money"},
    "social": {"period": "period", "insured_headcount": "int", "contributions_cny": "money"},
    "complaint": {"complaint_id": "text", "category": "text", "channel": "text", "text": "free_text"},
}
READING_FIELDS = ("start", "end", "amount", "estimated")
GROUPS = ("auto", "event_id", "day", "none")
TOP_KEYS = {"kind", "fields", "constants", "encoding", "delimiter", "timezone", "group", "reading_span"}
SPEC_KEYS = {"column", "format", "scale", "map", "default"}

_TRUE = {"true", "t", "yes", "y", "1", "是", "真", "√"}
_FALSE = {"false", "f", "no", "n", "0", "否", "假", "×"}
_SPAN = re.compile(r"^(\d+)\s*(m|min|h|d)$")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_STAMP = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ]+(\d{1,2}):(\d{1,2})(?::(\d{1,2})(\.\d+)?)?)?"
                    r"\s*(Z|z|[+-]\d{2}:?\d{2})?$")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_PERIOD = re.compile(r"^(\d{4})-(\d{1,2})(?:-\d{1,2})?$")


def _chinese(text: str) -> str:
    """``2024年3月1日 8时30分`` / ``2024/3/1`` / ``2024.3.1`` → ``2024-3-1 8:30``.

    >>> _chinese("2024年3月1日 8时30分"), _chinese("2024/3/1 08:30"), _chinese("2024年3月")
    ('2024-3-1 8:30', '2024-3-1 08:30', '2024-3')
    """
    text = text.strip().replace("年", "-").replace("月", "-").replace("日", " ").replace("号", " ")
    text = re.sub(r"^(\d{4})[/.](\d{1,2})(?:[/.](\d{1,2}))?", lambda m: "-".join(g for g in m.groups() if g), text)
    text = text.replace("时", ":").replace("点", ":").replace("分", ":").replace("秒", "")
    text = re.sub(r"\s+", " ", re.sub(r"-\s*$", "", text.strip()))   # "2024-3-" (from 2024年3月) → "2024-3"
    return re.sub(r":$", "", text.strip())


def _compact_date(text: str) -> str:
    """``20240301`` → ``2024-03-01``, ``20240301 0830[00]`` → ``2024-03-01 08:30[:00]``."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(?:[ T]?(\d{2})(\d{2})(\d{2})?)?", text)
    if not m:
        return text
    y, mo, d, h, mi, s = m.groups()
    out = f"{y}-{mo}-{d}"
    if h:
        out += f" {h}:{mi}" + (f":{s}" if s else "")
    return out


@dataclass(frozen=True)
class Column:
    """How one field is filled: from a column (with format, scale, value map, default) or a constant."""

    field: str
    type: str
    column: str | None = None
    constant: Any = None
    format: str | None = None
    scale: float | None = None
    map: dict[str, str] | None = None
    default: Any = None


@dataclass(frozen=True)
class Mapping:
    """A department export's columns → SPEC §2 fields of one ``kind`` (see the module doc)."""

    kind: str
    columns: dict[str, Column]
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    tz: tzinfo = timezone(timedelta(hours=8))
    group: str = "auto"
    reading_span: timedelta | None = None
    name: str = "mapping"   # where it came from, for messages
    spec: dict = field(default_factory=dict, compare=False, repr=False)   # as written

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> "Mapping":
        """Read a YAML mapping file; ``MappingError`` (one line: where, what to fix) if it is wrong."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MappingError(f"{path}: no such mapping file; give the path of a YAML mapping "
                               "(examples in docs/examples/)") from None
        except UnicodeDecodeError:
            raise MappingError(f"{path}: not UTF-8 text; save the mapping file as UTF-8") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise MappingError(f"{path}: not valid YAML{where} ({problem}); fix the syntax there") from None
        return cls.from_dict(data, name=str(path))

    @classmethod
    def from_dict(cls, data: Any, name: str = "mapping") -> "Mapping":
        """Build from the YAML structure (``kind``, ``fields``, ``constants``, options)."""

        def fail(where: str, what: str):
            raise MappingError(f"{name}: {where}: {what}")

        if not isinstance(data, dict):
            fail("top level", "expected keys like kind:, fields:, constants: (see docs/REPLAY.md)")
        unknown = sorted(set(map(str, data)) - TOP_KEYS)
        if unknown:
            fail(unknown[0], f"unknown key; the keys are {', '.join(sorted(TOP_KEYS))}")
        kind = data.get("kind")
        if kind not in KINDS:
            fail("kind", f"{kind!r} is not a kind; write one of {', '.join(KINDS)}")
        types = {**COMMON, **FIELDS[kind]}
        columns: dict[str, Column] = {}
        fields_ = data.get("fields") or {}
        constants = data.get("constants") or {}
        for section, value in (("fields", fields_), ("constants", constants)):
            if not isinstance(value, dict):
                fail(section, "expected a mapping of field: value lines")
            for key in value:
                if key not in types:
                    fail(f"{section}.{key}", f"not a field of a {kind} event; the fields are {', '.join(types)}")
                if key in columns:
                    fail(f"{section}.{key}", "given both as a column and as a constant; keep one")
                columns[key] = cls._column(key, types[key], value[key], section, fail)
        group = data.get("group", "auto")
        if group not in GROUPS:
            fail("group", f"{group!r}; write one of {', '.join(GROUPS)}")
        span = data.get("reading_span")
        if span is not None:
            m = _SPAN.match(str(span).strip())
            if not m:
                fail("reading_span", f"{span!r}; write e.g. 15m, 1h or 1d")
            n, unit = int(m.group(1)), m.group(2)
            span = timedelta(minutes=n) if unit in ("m", "min") else timedelta(hours=n) if unit == "h" else timedelta(days=n)
        if kind != "utility" and (span is not None or group != "auto"):
            fail("reading_span" if span is not None else "group", "only utility files have readings; remove it")
        encoding = str(data.get("encoding", "utf-8-sig"))
        try:
            "".encode(encoding)
        except LookupError:
            fail("encoding", f"{encoding!r} is not an encoding; write e.g. utf-8 or gb18030")
        delimiter = data.get("delimiter", ",")
        if delimiter in ("\\t", "tab"):
            delimiter = "\t"
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            fail("delimiter", f"{delimiter!r}; write one character, e.g. \",\" or tab")
        tz = _timezone(data.get("timezone", "+08:00"), fail)
        for c in columns.values():
            if c.column is None:
                try:
                    _converter(c, tz)
                except ValueError as exc:
                    fail(f"constants.{c.field}", str(exc))
        return cls(kind, columns, encoding, delimiter, tz, group, span, name, data)

    @staticmethod
    def _column(key: str, type_: str, spec: Any, section: str, fail) -> Column:
        where = f"{section}.{key}"
        if section == "constants":
            if isinstance(spec, (dict, list)) or spec is None:
                fail(where, "a constant is a single value")
            return Column(key, type_, constant=spec)
        if isinstance(spec, str):
            spec = {"column": spec}
        if not isinstance(spec, dict):
            fail(where, "write the column name, or {column: NAME, format: ..., scale: ..., map: {...}}")
        extra = sorted(set(spec) - SPEC_KEYS)
        if extra:
            fail(f"{where}.{extra[0]}", f"unknown option; the options are {', '.join(sorted(SPEC_KEYS))}")
        if not isinstance(spec.get("column"), str) or not spec["column"]:
            fail(where, "the column name is missing: write column: NAME (or move it under constants:)")
        scale = spec.get("scale")
        if scale is not None and (type_ not in ("money", "int") or not isinstance(scale, (int, float))):
            fail(f"{where}.scale", "only numbers can be scaled, by a number (e.g. 10000 for 万元)")
        fmt = spec.get("format")
        if fmt is not None:
            if type_ not in ("timestamp", "date", "period") or not isinstance(fmt, str) or "%" not in fmt:
                fail(f"{where}.format", "a strptime format (e.g. \"%Y年%m月%d日\") for a date, period or time field")
        vmap = spec.get("map")
        if vmap is not None:
            if not isinstance(vmap, dict):
                fail(f"{where}.map", "write export value: contract value pairs, e.g. {存续: active}")
            vmap = {str(k): str(v) for k, v in vmap.items()}
        return Column(key, type_, column=spec["column"], format=fmt, scale=scale, map=vmap,
                      default=spec.get("default"))

    @classmethod
    def from_flags(cls, kind: str | None, maps: list[str], sets: list[str], base: "Mapping | None" = None,
                   **options) -> "Mapping":
        """``--kind``, ``--map COLUMN=FIELD[:FORMAT]``, ``--set FIELD=VALUE``, options (on top of ``base``).

        >>> m = Mapping.from_flags("tax", ["税号=uscc", "所属期=period:%Y%m"], ["source=dg-tax"])
        >>> m.columns["period"].format, m.columns["source"].constant
        ('%Y%m', 'dg-tax')
        """
        spec = dict(base.spec) if base is not None else {}
        fields_ = dict(spec.get("fields") or {})
        constants = dict(spec.get("constants") or {})
        for item in maps:
            column, sep, target = item.rpartition("=")
            if not sep or not column or not target:
                raise MappingError(f"--map {item}: write --map COLUMN=FIELD (or COLUMN=FIELD:FORMAT)")
            target, _, fmt = target.partition(":")
            fields_[target] = {"column": column, **({"format": fmt} if fmt else {})}
            constants.pop(target, None)
        for item in sets:
            target, sep, value = item.partition("=")
            if not sep or not target:
                raise MappingError(f"--set {item}: write --set FIELD=VALUE, e.g. --set source=dg-tax")
            constants[target] = value
            fields_.pop(target, None)
        spec.update(fields=fields_, constants=constants)
        if kind:
            spec["kind"] = kind
        spec.update({k: v for k, v in options.items() if v is not None})
        return cls.from_dict(spec, name=base.name if base is not None else "command line")

    def bind(self, header: list[str], path: object = "file") -> "BoundMapping":
        """Check the columns against a file's header; a field not mapped takes a column of its own name."""
        header = [h.strip().lstrip("\ufeff") for h in header]
        index = {h: i for i, h in enumerate(header)}
        types = {**COMMON, **FIELDS[self.kind]}
        columns = dict(self.columns)
        for name, type_ in types.items():
            if name not in columns and name in index:
                columns[name] = Column(name, type_, column=name)
        missing = [c for c in columns.values() if c.column is not None and c.column not in index]
        if missing:
            c = missing[0]
            raise MappingError(f"{self.name}: fields.{c.field}: column {c.column!r} is not in the header of {path} "
                               f"(it has: {', '.join(header)}); fix the column name or the file")
        readers = [(c.field, index.get(c.column), _converter(c, self.tz)) for c in columns.values()]
        return BoundMapping(self, readers, len(header))


def _timezone(value: Any, fail) -> tzinfo:
    text = str(value).strip()
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(text)
    except Exception:
        fail("timezone", f"{value!r}; write an offset like +08:00 or a zone like Asia/Shanghai")


# -- cell conversion ----------------------------------------------------------------------------------
def _converter(c: Column, tz: tzinfo) -> Callable[[str], Any]:
    """A function from a cell's text to the field's JSON value (ValueError says why not)."""
    read = _READERS[c.type]
    fmt, scale, vmap, default = c.format, c.scale, c.map, c.default

    def convert(cell: str) -> Any:
        if vmap is not None:
            cell = vmap.get(cell.strip(), cell)
        if cell.strip() == "":
            if default is None:
                return _ABSENT
            cell = str(default)
        value = read(cell, fmt, tz)
        if scale is not None:
            value = value * scale
            if c.type == "int":
                value = int(round(value))
        return value

    if c.column is None:    # a constant: converted once, so a bad one fails the mapping, not each row
        value = convert(str(c.constant).lower() if isinstance(c.constant, bool) else str(c.constant))
        return lambda cell, value=value: value
    return convert


_ABSENT = object()


def _text(cell: str, fmt, tz) -> str:
    return cell.strip()


def _free_text(cell: str, fmt, tz) -> str:
    return cell


def _code(cell: str, fmt, tz) -> str:
    return cell.strip().upper()


def _number(cell: str) -> float:
    text = cell.strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "").replace(" ", "")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number") from None


def _money(cell: str, fmt, tz) -> float:
    return _number(cell)


def _int(cell: str, fmt, tz) -> int:
    value = _number(cell)
    if not value.is_integer():
        raise ValueError(f"{cell!r} is not a whole number")
    return int(value)


def _bool(cell: str, fmt, tz) -> bool:
    text = cell.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{cell!r} is not yes/no (true/false, 1/0, 是/否)")


def _strptime(cell: str, fmt: str) -> datetime:
    try:
        return datetime.strptime(cell.strip(), fmt)
    except ValueError:
        raise ValueError(f"{cell!r} does not match the format {fmt!r}") from None


def _parse_time(cell: str, fmt: str | None, tz: tzinfo, what: str) -> datetime:
    text = cell.strip()
    if fmt:
        moment = _strptime(text, fmt)
    else:
        m = _STAMP.match(_chinese(_compact_date(text)))
        if not m:
            raise ValueError(f"{cell!r} is not a {what} (e.g. 2024-03-01 08:00, 2024/3/1, 2024年3月1日); "
                             "give its format in the mapping")
        y, mo, d, h, mi, s, frac, off = m.groups()
        try:
            moment = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                              int(round(float(frac) * 1_000_000)) if frac else 0)
        except ValueError as exc:
            raise ValueError(f"{cell!r}: {exc}") from None
        if off:
            off = off.upper()
            if off == "Z":
                moment = moment.replace(tzinfo=timezone.utc)
            else:
                sign = 1 if off[0] == "+" else -1
                hh, mm = off[1:].replace(":", "")[:2], off[1:].replace(":", "")[2:]
                moment = moment.replace(tzinfo=timezone(sign * timedelta(hours=int(hh), minutes=int(mm))))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _timestamp(cell: str, fmt, tz) -> str:
    text = cell.strip()
    if not fmt and _RFC3339.fullmatch(text):
        return text    # already what the contract wants: kept exactly
    return _parse_time(text, fmt, tz, "time").isoformat()


def _date(cell: str, fmt, tz) -> str:
    text = cell.strip()
    if not fmt and _DATE.fullmatch(text) and len(text) == 10:
        return text
    return _parse_time(text, fmt, tz, "date").date().isoformat()


def _period(cell: str, fmt, tz) -> str:
    text = cell.strip()
    if fmt:
        moment = _strptime(text, fmt)
        return f"{moment.year:04d}-{moment.month:02d}"
    if re.fullmatch(r"\d{6}", text):
        text = f"{text[:4]}-{text[4:]}"
    m = _PERIOD.match(_chinese(text))
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"{cell!r} is not a month (e.g. 2024-03, 202403, 2024年3月)")
    return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}"


_READERS = {"text": _text, "free_text": _free_text, "code": _code, "uscc": _code, "money": _money, "int": _int,
            "bool": _bool, "timestamp": _timestamp, "date": _date, "period": _period}


# -- rows → events ----------------------------------------------------------------------------------------
@dataclass
class BoundMapping:
    """A mapping checked against one file's header: turns rows into event dicts."""

    mapping: Mapping
    readers: list[tuple[str, int | None, Callable[[str], Any]]]
    width: int

    def values(self, row: list[str]) -> dict[str, Any]:
        """The row's fields (no defaults for derived ones); ``ValueError`` names the bad field."""
        if len(row) != self.width:
            raise _RowError("invalid_row", f"{len(row)} cells, the header has {self.width}")
        out: dict[str, Any] = {}
        for name, index, convert in self.readers:
            cell = row[index] if index is not None else ""
            try:
                value = convert(cell)
            except ValueError as exc:
                raise _RowError(f"invalid_{name}", f"{name}: {exc}") from None
            if value is not _ABSENT:
                out[name] = value
        return out

    def event(self, row: list[str]) -> dict[str, Any]:
        """One row as one event (for utility: an upload of one reading)."""
        values = self.values(row)
        return self.finish(values, [values] if self.mapping.kind == "utility" else None)

    def finish(self, head: dict[str, Any], readings: list[dict] | None) -> dict[str, Any]:
        """The event of ``head``'s fields (and ``readings`` for utility), with the derived fields."""
        kind = self.mapping.kind
        event: dict[str, Any] = {"kind": kind}
        event.update((k, v) for k, v in head.items() if k not in READING_FIELDS)
        event.setdefault("schema_version", 1)
        if kind == "utility":
            if "unit" not in event and event.get("utility") in UTILITY_UNITS:
                event["unit"] = UTILITY_UNITS[event["utility"]]
            event["readings"] = [self.reading(r) for r in readings]
            if "event_time" not in event and readings and all("end" in r for r in event["readings"]):
                event["event_time"] = max(event["readings"], key=lambda r: r["end"])["end"]
        if "event_id" not in event:
            digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()
            event = {"event_id": f"csv-{digest}", **event}
        return event

    def reading(self, values: dict[str, Any]) -> dict[str, Any]:
        reading = {k: values[k] for k in READING_FIELDS if k in values}
        span = self.mapping.reading_span
        if "end" not in reading and span is not None and "start" in reading:
            start = datetime.fromisoformat(reading["start"].replace("Z", "+00:00"))
            reading["end"] = (start + span).isoformat()
        return {k: reading[k] for k in READING_FIELDS if k in reading}


class _RowError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# -- reading a CSV file ------------------------------------------------------------------------------------
@dataclass
class _Cursor:
    line: int = 0
    offset: int = 0
    undecodable: set = field(default_factory=set)


def _text_lines(fh, encoding: str, cursor: _Cursor) -> Iterator[str]:
    for raw in fh:
        cursor.line += 1
        cursor.offset += len(raw)
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError:
            cursor.undecodable.add(cursor.line)
            yield raw.decode(encoding, "replace")


def read_rows(path: Path, mapping: Mapping) -> Iterator[tuple[int, int, int, list[str] | Rejection]]:
    """``(first line, last line, bytes read, cells or a Rejection)`` per data row; the first row
    is the header (bound to the mapping before anything else is yielded)."""
    cursor = _Cursor()
    with open(path, "rb") as fh:
        reader = csv.reader(_text_lines(fh, mapping.encoding, cursor), delimiter=mapping.delimiter)
        previous = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield previous + 1, cursor.line, cursor.offset, Rejection("map", "invalid_row", f"CSV: {exc}")
                previous = cursor.line
                continue
            first, previous = previous + 1, cursor.line
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if cursor.undecodable and any(n in cursor.undecodable for n in range(first, previous + 1)):
                yield first, previous, cursor.offset, Rejection(
                    "map", "invalid_encoding", f"not {mapping.encoding} text; set encoding: in the mapping (e.g. gb18030)")
                continue
            yield first, previous, cursor.offset, row


def read_csv(path: Path, mapping: Mapping, max_bytes: int = 4 * 1024 * 1024) -> Iterator[Line]:
    """Judge the rows of a CSV export as events (grouping utility rows into uploads)."""
    rows = read_rows(path, mapping)
    bound = None
    for first, last, offset, cells in rows:
        if isinstance(cells, Rejection):
            if bound is None:
                raise MappingError(f"{path}:{first}: the header cannot be read ({cells.detail})")
            continue
        bound = mapping.bind(cells, path)
        break
    if bound is None:
        raise MappingError(f"{path}: no header row; the first row must name the columns")
    if mapping.kind == "utility":
        yield from _utility_lines(_row_values(rows, bound), bound, mapping, max_bytes)
        return
    for item in _row_values(rows, bound):
        if isinstance(item, Line):
            yield item
        else:
            first, last, offset, values = item
            yield _judged(bound.finish(values, None), first, last, offset, 1, max_bytes)


def _row_values(rows, bound: BoundMapping) -> Iterator[Line | tuple[int, int, int, dict]]:
    """Each row's converted fields ``(first, last, offset, values)``, or a rejected ``Line``."""
    for first, last, offset, cells in rows:
        if isinstance(cells, Rejection):
            yield Line(first, b"", None, None, cells, offset, last)
            continue
        try:
            yield first, last, offset, bound.values(cells)
        except _RowError as exc:
            yield Line(first, b"", None, None, Rejection("map", exc.reason, exc.detail), offset, last)


def _judged(event: dict, first: int, last: int, offset: int, rows: int, max_bytes: int) -> Line:
    raw = orjson.dumps(event)
    if len(raw) > max_bytes:
        return Line(first, raw, None, None, Rejection("decode", "oversize", f"{len(raw)} bytes exceeds "
                                                      f"the limit of {max_bytes}"), offset, last, rows)
    verdict = validate_event(event)
    if isinstance(verdict, Rejection):
        return Line(first, raw, None, None, verdict, offset, last, rows)
    return Line(first, raw, verdict.kind, verdict.uscc, None, offset, last, rows)


def _group_key(mapping: Mapping, group: str, values: dict) -> tuple:
    head = tuple(values.get(k) for k in ("uscc", "source", "utility", "unit", "meter_id"))
    if group == "event_id":
        return (values.get("event_id"),) + head + (values.get("event_time"),)
    start = values.get("start") or ""
    try:
        day = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(mapping.tz).date()
    except ValueError:
        day = start
    return head + (day, values.get("event_id"), values.get("event_time"))


def _utility_lines(items, bound: BoundMapping, mapping: Mapping, max_bytes: int) -> Iterator[Line]:
    """Consecutive rows of one upload → one event; each row's own problems are reported at its line."""
    group = mapping.group
    if group == "auto":
        group = "event_id" if any(f == "event_id" and i is not None for f, i, _ in bound.readers) else "day"
    pending: list[tuple[int, int, dict]] = []   # (first line, last line, values)
    key: tuple | None = None
    starts: set = set()
    offset = 0

    def flush() -> Iterator[Line]:
        if pending:
            yield from _upload(pending, bound, offset, max_bytes)
            pending.clear()

    for item in items:
        if isinstance(item, Line):
            yield item
            continue
        first, last, offset, values = item
        row_key = None if group == "none" else _group_key(mapping, group, values)
        start = values.get("start")
        # a new upload: another meter/day/id, a full one, or a reading it already has (a duplicate delivery)
        if row_key is None or row_key != key or len(pending) >= MAX_READINGS or start in starts:
            yield from flush()
            starts.clear()
        key = row_key
        starts.add(start)
        pending.append((first, last, values))
    yield from flush()


def _upload(pending: list[tuple[int, int, dict]], bound: BoundMapping, offset: int, max_bytes: int) -> Iterator[Line]:
    """Validate a group as one upload; a reading the contract refuses is reported at its own row
    and left out, and the rest is judged again."""
    rows = list(pending)
    while rows:
        event = bound.finish(rows[0][2], [v for _, _, v in rows])
        line = _judged(event, rows[0][0], rows[-1][1], offset, len(rows), max_bytes)
        bad = _bad_reading(line.rejection) if line.rejection is not None else None
        if bad is None or bad >= len(rows) or len(rows) == 1:
            yield line
            return
        first, last, _ = rows.pop(bad)
        reason, detail = line.rejection.reason, re.sub(r"^readings\.\d+\.", "", line.rejection.detail)
        yield Line(first, b"", None, None, Rejection(line.rejection.stage, reason, detail), offset, last)


def _bad_reading(rejection: Rejection) -> int | None:
    """The index of the reading a rejection is about (``readings.3.amount: …``), if any."""
    m = re.match(r"readings\.(\d+)\b", rejection.detail)
    return int(m.group(1)) if m else None


__all__ = ["Mapping", "MappingError", "BoundMapping", "read_csv", "read_rows", "FIELDS", "COMMON"]
