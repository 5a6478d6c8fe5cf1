"""Reading user files safely: size, encoding, YAML errors, alias bombs and deep nesting.

Everything here turns a problem into a :class:`UserError` naming the file and the place.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from octosim.errors import UserError

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_EXPANDED_NODES = 2_000_000
MAX_DEPTH = 64


class _Loader(yaml.SafeLoader):
    """SafeLoader that bounds nesting depth while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise UserError(
                    f"nesting deeper than {MAX_DEPTH} levels", where=f"line {mark.line + 1}"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:  # type: ignore[override]
        # PyYAML lets plain ValueErrors escape from scalars it cannot build (a timestamp like
        # 2024-13-45, an integer of more than 4300 digits): report them at the node.
        try:
            return super().construct_object(node, deep)
        except ValueError as exc:
            msg = str(exc)
            if "integer string conversion" in msg:
                msg = "integer has too many digits"
            mark = node.start_mark
            raise UserError(f"YAML error: cannot read this value: {msg}",
                            where=f"line {mark.line + 1}, column {mark.column + 1}") from None


def _expanded_size(data: Any) -> int:
    """Node count as if every alias were expanded, without expanding (memoised by id)."""
    memo: dict[int, int] = {}

    def size(x: Any) -> int:
        if isinstance(x, dict | list):
            key = id(x)
            if key in memo:
                return memo[key]
            memo[key] = MAX_EXPANDED_NODES + 1  # a cycle counts as too large
            children = x.items() if isinstance(x, dict) else enumerate(x)
            total = 1
            for _, v in children:
                total += size(v)
                if total > MAX_EXPANDED_NODES:
                    break
            memo[key] = total
            return total
        return 1

    return size(data)


def parse_yaml_text(text: str, file: str) -> Any:
    if "\x00" in text:
        raise UserError("not a text file (contains NUL bytes)", file=file)
    try:
        loader = _Loader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except UserError as exc:
        raise exc.within(file=file) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        raise UserError(f"YAML error: {what}", file=file, where=where) from None
    except yaml.YAMLError as exc:
        raise UserError(f"YAML error: {exc}", file=file) from None
    except RecursionError:
        raise UserError(f"nesting deeper than {MAX_DEPTH} levels", file=file) from None
    if _expanded_size(data) > MAX_EXPANDED_NODES:
        raise UserError(
            f"document expands to more than {MAX_EXPANDED_NODES} nodes (YAML alias bomb?)",
            file=file,
        )
    return data


def read_text(path: str | Path) -> str:
    p = Path(path)
    file = str(path)
    try:
        if p.is_dir():
            raise UserError("is a directory, not a file", file=file)
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(f"file is larger than {MAX_FILE_BYTES} bytes", file=file)
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UserError("no such file", file=file) from None
    except PermissionError:
        raise UserError("permission denied", file=file) from None
    except OSError as exc:
        raise UserError(f"cannot read: {exc.strerror or exc}", file=file) from None
    if b"\x00" in raw:
        raise UserError("not a text file (contains NUL bytes)", file=file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"not UTF-8 text (byte {exc.start})", file=file) from None


def load_yaml_file(path: str | Path) -> Any:
    return parse_yaml_text(read_text(path), str(path))


def require_mapping(data: Any, file: str, what: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise UserError(f"expected a mapping at the top ({what}), got {type(data).__name__}",
                        file=file)
    return dict(data)


def format_loc(loc: tuple[Any, ...]) -> str:
    """Turn a pydantic/our location tuple into ``tasks.detect.peas[1]``."""
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":  # pydantic's marker after a mapping key it rejected
            continue
        if isinstance(part, int) and not (i + 1 < len(loc) and loc[i + 1] == "[key]"):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def pydantic_error(exc: Any, file: str, prefix: str = "") -> UserError:
    """The first error of a pydantic ValidationError as a one-line UserError."""
    err = exc.errors()[0]
    # Drop the parts pydantic adds for validators and union members ("function-after[...]",
    # "literal['min','max']"); keep "[key]", which marks a rejected mapping key.
    loc = tuple(p for p in err.get("loc", ())
                if not (isinstance(p, str) and p != "[key]"
                        and (p.startswith("function-") or "[" in p or "(" in p)))
    where = format_loc(((prefix,) if prefix else ()) + loc) or None
    msg = err.get("msg", "invalid value")
    if err.get("type") == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if loc and loc[-1] == "[key]":
        msg = f"this name (a mapping key): {msg}"
    if err.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif err.get("type") == "missing":
        msg = "required field is missing"
    inp = err.get("input")
    if err.get("type") not in ("missing", "extra_forbidden") and isinstance(inp, int | float | str):
        text = repr(inp)
        if len(text) < 60:
            msg += f" (got {text})"
    return UserError(msg, file=file, where=where)
