"""YAML and JSON documents (spec files, Keras configs), parsed with hard limits.

- Duplicate mapping keys are refused (both parsers would silently keep the last one).
- YAML aliases are bounded: at most :data:`MAX_ALIASES` of them, and the document expanded
  through its aliases may hold at most :data:`MAX_NODES` nodes, so an alias bomb is refused
  before anything walks (or prints) the expanded value.
- Nesting deeper than :data:`MAX_DEPTH` is refused (instead of a ``RecursionError``).
- Only ``yaml.SafeLoader`` constructors: no Python tags.
Every error is one line naming the file and the line/column where the parser knows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import AccelError
from .files import read_bytes, short

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 256
MAX_NODES = 100_000


def _where(mark) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class _Refused(Exception):
    """A limit of this module, raised from inside the YAML loader; carries the message."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that counts aliases and depth while composing, rejects duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise _Refused(f"more than {MAX_ALIASES} aliases{_where(mark)}")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels{_where(mark)}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # unhashable keys: the constructor reports them
                if duplicate:
                    raise _Refused(f"duplicate key {short(key)}{_where(key_node.start_mark)}")
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node, memo: dict, limit: int) -> int:
    """Nodes in ``node`` with every alias expanded (memoized, so a bomb costs nothing)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a cycle (a recursive alias) counts as too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, limit)
            if size > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if size > limit:
                break
    memo[key] = size
    return size


def parse_yaml(text: str, context: str) -> Any:
    """Parse YAML ``text``; ``context`` (the file) prefixes every error."""
    try:
        loader = _Loader(text)  # the reader refuses control characters right here
    except yaml.YAMLError as e:
        raise AccelError(f"{context}: malformed YAML: {short(str(e).splitlines()[0])[1:-1]}"
                         ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, MAX_NODES) > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES:,} values once its aliases are expanded "
                           f"(an alias bomb?)")
        return loader.construct_document(node)
    except _Refused as e:
        raise AccelError(f"{context}: YAML refused: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise AccelError(f"{context}: malformed YAML{_where(mark)}: {short(problem)[1:-1]}"
                         ) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        # e.g. an integer of 5,000 digits (int's digit limit), or an unhashable key
        raise AccelError(f"{context}: malformed YAML: {short(str(e))[1:-1]}") from None
    finally:
        loader.dispose()


def _no_duplicates(pairs: list) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"duplicate key {short(key)}")
        out[key] = value
    return out


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(text: str | bytes, context: str) -> Any:
    """Parse JSON ``text``; duplicate keys, deep nesting and NaN/Infinity are refused."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AccelError(f"{context}: not UTF-8 text (byte {e.start})") from None

    def constant(name: str):
        raise _Refused(f"{name} is not a JSON number")

    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=constant)
    except _Refused as e:
        raise AccelError(f"{context}: JSON refused: {e}") from None
    except json.JSONDecodeError as e:
        raise AccelError(f"{context}: malformed JSON at line {e.lineno}: {e.msg} "
                         f"(column {e.colno})") from None
    except RecursionError:
        raise AccelError(f"{context}: JSON refused: nested deeper than {MAX_DEPTH} levels"
                         ) from None
    except (ValueError, TypeError) as e:
        raise AccelError(f"{context}: malformed JSON: {short(str(e))[1:-1]}") from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise AccelError(f"{context}: JSON refused: nested deeper than {MAX_DEPTH} levels")
    return value


def read_document(path: str | Path) -> Any:
    """A YAML (``.yaml``/``.yml``) or JSON (``.json``) file as plain Python data."""
    path = Path(path)
    raw = read_bytes(path, "spec", max_bytes=MAX_DOCUMENT_BYTES)
    if path.suffix.lower() == ".json":
        return parse_json(raw, str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AccelError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return parse_yaml(text, str(path))
