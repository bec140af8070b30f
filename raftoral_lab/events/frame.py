"""Events as a pandas DataFrame: the format students already know how to question.

One row per event. The columns are the common ones (`kind`, `node`, `group`, `seq`, `ts`,
`tick`, `v`), then one column per field of the kinds present, in the order of the schema
(so the same kinds always give the same columns), empty where a kind has no such field.
`workflow_id`, `term`, `reason`, `src`, `dst`... are thus ordinary columns to group by.

pandas is imported on first use only, so importing the events stays light.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

from raftoral_lab.errors import ConfigError
from raftoral_lab.events.models import EVENT_TYPES, EventBase

BASE_COLUMNS: tuple[str, ...] = ("kind", "node", "group", "seq", "ts", "tick", "v")

_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(name for name in cls.model_fields if name not in BASE_COLUMNS)
    for kind, cls in EVENT_TYPES.items()
}
_ORDER: dict[str, int] = {}
for _fields in _FIELDS.values():
    for _name in _fields:
        _ORDER.setdefault(_name, len(_ORDER))


def _dtype(annotation: Any) -> str | None:
    """The pandas dtype of a field: nullable ints and bools, so 3 does not show as 3.0."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _dtype(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        return _dtype(inner[0]) if len(inner) == 1 else None
    return {int: "Int64", bool: "boolean", float: "float64"}.get(annotation)


def _dtypes() -> dict[str, str]:
    found: dict[str, set[str | None]] = {}
    for cls in EVENT_TYPES.values():
        for name, info in cls.model_fields.items():
            found.setdefault(name, set()).add(_dtype(info.annotation))
    dtypes: dict[str, str] = {}
    for name, kinds in found.items():
        only = next(iter(kinds))
        if len(kinds) == 1 and only is not None and name != "kind":
            dtypes[name] = only
    return dtypes


_DTYPES = _dtypes()


def columns_for(kinds: Iterable[str]) -> list[str]:
    """The DataFrame columns for events of these kinds, in schema order."""
    present = {name for kind in set(kinds) for name in _FIELDS.get(kind, ())}
    return [*BASE_COLUMNS, *sorted(present, key=_ORDER.__getitem__)]


def to_dataframe(events: Iterable[EventBase]) -> Any:
    """A pandas DataFrame of `events`, one row per event (see the module docstring).

    `kind` is a categorical column, int and bool fields are nullable (`Int64`, `boolean`:
    empty where a kind has no such field), id lists (`voters`, `sides`) stay tuples.
    """
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "to_dataframe needs pandas: pip install pandas"
        ) from None
    rows = [event.__dict__ for event in events]  # pydantic keeps the fields there
    columns = columns_for(row["kind"] for row in rows)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame = frame.astype({c: _DTYPES[c] for c in columns if c in _DTYPES})
    frame["kind"] = frame["kind"].astype("category")
    return frame
