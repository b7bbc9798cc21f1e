"""Backward compatibility of a message schema with its released version.

A change keeps ``schema_version`` only if both sides of a topic keep working:

- every message valid under the old schema is valid under the new one (no new required
  field, no field restricted to fewer types or values, enums only grow), and
- every field a subscriber reads is still there, with the same type, in every message
  (no removed or retyped field, no required field made optional).

``breaking_changes(old, new)`` lists what breaks that rule, one readable line each, by
comparing the two schema documents field by field (``$ref`` resolved within each).  Value
bounds (minimum, maxLength, pattern) are not compared.

>>> old = {"type": "object", "required": ["a"], "properties": {
...     "a": {"type": "string"}, "b": {"enum": ["x", "y"]}}}
>>> breaking_changes(old, old)
[]
>>> new = {"type": "object", "required": ["a", "c"], "properties": {
...     "a": {"type": "integer"}, "b": {"enum": ["x"]}, "c": {"type": "string"}}}
>>> for line in breaking_changes(old, new): print(line)
a: retyped from string to integer
b: enum lost 'y'
c: new required field
"""

from __future__ import annotations

from typing import Any

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null",
               list: "array", dict: "object"}


def breaking_changes(old: dict, new: dict) -> list[str]:
    """What in ``new`` breaks subscribers or senders of messages valid under ``old``."""
    problems: list[str] = []
    _compare(_Doc(old), old, _Doc(new), new, "", problems)
    return problems


class _Doc:
    """A schema document, for resolving its local ``$ref``s (``#/$defs/Name``)."""

    def __init__(self, root: dict):
        self.root = root

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 32:
            target: Any = self.root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            seen += 1
        return node


def _types(doc: _Doc, node: dict) -> set[str]:
    """The JSON types a schema admits (empty: any)."""
    node = doc.resolve(node)
    if "const" in node:
        return {_JSON_TYPES.get(type(node["const"]), "any")}
    if "enum" in node:
        return {_JSON_TYPES.get(type(v), "any") for v in node["enum"]}
    declared = node.get("type")
    if declared is not None:
        return set(declared) if isinstance(declared, list) else {declared}
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        out: set[str] = set()
        for branch in branches:
            kinds = _types(doc, branch)
            if not kinds:
                return set()
            out |= kinds
        return out
    return set()


def _values(doc: _Doc, node: dict) -> list | None:
    """The values an enum or const allows (None: not restricted to a list)."""
    node = doc.resolve(node)
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


def _widen(kinds: set[str]) -> set[str]:
    return kinds | {"integer"} if "number" in kinds else kinds


def _compare(od: _Doc, old: dict, nd: _Doc, new: dict, path: str, problems: list[str]) -> None:
    old, new = od.resolve(old), nd.resolve(new)
    where = path or "(message)"
    old_types, new_types = _types(od, old), _types(nd, new)
    if new_types and (not old_types or not old_types <= _widen(new_types)):
        problems.append(f"{where}: retyped from {_name(old_types)} to {_name(new_types)}")
    elif old.get("format") != new.get("format") and new.get("format"):
        problems.append(f"{where}: format changed from {old.get('format') or 'none'} to {new['format']}")
    old_values, new_values = _values(od, old), _values(nd, new)
    if new_values is not None:
        if old_values is None:
            problems.append(f"{where}: now restricted to {new_values!r}")
        else:
            for lost in (v for v in old_values if v not in new_values):
                problems.append(f"{where}: enum lost {lost!r}")
    old_props, new_props = old.get("properties") or {}, new.get("properties") or {}
    old_required, new_required = set(old.get("required") or ()), set(new.get("required") or ())
    prefix = f"{path}." if path else ""
    for name, schema in old_props.items():
        if name not in new_props:
            problems.append(f"{prefix}{name}: removed field")
            continue
        _compare(od, schema, nd, new_props[name], prefix + name, problems)
        if name in old_required and name not in new_required:
            problems.append(f"{prefix}{name}: no longer required (subscribers rely on it)")
    for name in sorted(new_required - old_required):
        problems.append(f"{prefix}{name}: new required field")
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _compare(od, old["items"], nd, new["items"], f"{path}[]", problems)
    for key in ("anyOf", "oneOf"):  # nullable or union fields: compare the branches of the same type
        old_branches = {frozenset(_types(od, b)): b for b in old.get(key) or ()}
        new_branches = {frozenset(_types(nd, b)): b for b in new.get(key) or ()}
        for kinds, branch in old_branches.items():
            if kinds in new_branches and (od.resolve(branch).get("properties") or od.resolve(branch).get("items")):
                _compare(od, branch, nd, new_branches[kinds], path, problems)


def _name(kinds: set[str]) -> str:
    return " or ".join(sorted(kinds)) if kinds else "any"
