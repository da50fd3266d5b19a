"""Dataclass records as JSON-ready dicts, for the ``to_dict`` methods of reports and manifests."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Iterable

__all__ = ["record_dict"]


def record_dict(record: Any, *, skip: Iterable[str] = (), **values: Any) -> dict[str, Any]:
    """The fields of dataclass instance ``record`` as a dict, in field order (shallow).

    Args:
        record: a dataclass instance.
        skip: names of fields to leave out.
        **values: field name -> the value to write instead of the field's own
            (a converted one, e.g. a tuple as a list); the key keeps its place.

    Returns:
        A new dict; nested values are the record's own objects, not copies.
    """
    left_out = set(skip)
    return {f.name: values.get(f.name, getattr(record, f.name)) for f in fields(record) if f.name not in left_out}
