"""The text of ``unified plan MODEL --explain`` (:class:`unified.explain.Explanation`)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unified.explain import Boundary, Explanation, Island

__all__ = ["explanation_text", "human_bytes", "human_seconds"]


def human_bytes(n: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units); None -> ``"?"``."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def human_seconds(s: float | None) -> str:
    """Seconds as ns / µs / ms / s with 3 significant digits; None -> ``"?"``."""
    if s is None:
        return "?"
    for scale, unit in ((1e-6, "ns"), (1e-3, "µs"), (1.0, "ms")):
        if s < scale:
            return f"{s / scale * 1e3:.3g} {unit}"
    return f"{s:.3g} s"


def _values(bs: tuple["Boundary", ...]) -> str:
    if not bs:
        return "none"
    total = sum(b.bytes or 0 for b in bs)
    unknown = sum(1 for b in bs if b.bytes is None)
    names = ", ".join(b.tensor for b in bs[:3]) + (f", +{len(bs) - 3}" if len(bs) > 3 else "")
    extra = f" ({unknown} of unknown size)" if unknown else ""
    return f"{len(bs)} value(s), {human_bytes(total)}{extra}: {names}"


def _island_lines(island: "Island") -> list[str]:
    parts = ", ".join(f"p{i}" for i in island.partitions)
    ops = ", ".join(f"{k}×{v}" if v > 1 else k for k, v in Counter(island.op_types).most_common(6))
    lines = [
        f"island {island.index}: {len(island.nodes)} node(s) on {', '.join(island.delegates)} "
        f"(partition{'s' if len(island.partitions) > 1 else ''} {parts}): {ops}",
    ]
    for op, why, n in island.reasons[:6]:
        lines.append(f"  why: {op}: {why}" + (f" ({n} nodes)" if n > 1 else ""))
    if len(island.reasons) > 6:
        lines.append(f"  why: ... and {len(island.reasons) - 6} more")
    lines.append(f"  in:  {_values(island.inputs)}")
    lines.append(f"  out: {_values(island.outputs)}")
    lines.append(f"  boundary copy time (estimate): {human_seconds(island.seconds)}")
    rw = island.rewrite
    if rw is None:
        lines.append("  rewrite: none found (the preferred delegate would need these ops)")
    else:
        how = f"; options: {rw.cli}" if rw.cli else ""
        lines.append(f"  rewrite: {rw.description} -> {rw.partitions_after} partition(s), from {rw.partitions_before}{how}")
    return lines


def explanation_text(ex: "Explanation") -> str:
    """The whole ``--explain`` report: a header, then one block per island."""
    gbs = ex.bandwidth / 1e9
    lines = [
        f"{ex.partitions} partition(s), {ex.nodes} node(s); preferred delegate '{ex.preferred}' runs "
        f"{ex.preferred_nodes}; {len(ex.islands)} island(s) left it",
        f"boundary times: bytes / {gbs:.1f} GB/s copy bandwidth ({ex.bandwidth_source})"
        + (f"; symbolic dims taken as {', '.join(f'{k}={v}' for k, v in ex.dims.items())}" if ex.dims else ""),
    ]
    for island in ex.islands:
        lines.append("")
        lines.extend(_island_lines(island))
    fixes: Counter[tuple[str, int]] = Counter(
        (i.rewrite.description, i.rewrite.partitions_after) for i in ex.islands if i.rewrite
    )
    if fixes:
        lines.append("")
        lines.append("rewrites (islands removed -> partitions after):")
        lines.extend(f"  {what}: {n} island(s) -> {after} partition(s)" for (what, after), n in fixes.most_common())
    return "\n".join(lines)
