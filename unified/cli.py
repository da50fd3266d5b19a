"""The ``unified`` command line.

Commands::

    unified devices                      delegates and backends here, with reasons
    unified plan MODEL [--delegates a,b] [--json | --dot] [--strict]
    unified run MODEL [--input NAME=FILE.npy ...] [--delegates a,b]
                      [--output-dir DIR] [--profile] [--repeat N]
    unified compile MODEL --delegates a,b -o DIR [--force]   ahead-of-time bundle

Plugins add more (``unified simulate``, ``unified conformance``) through the
``unified_cli_commands`` hook. Exit codes: 0 success, 1 a ``UnifiedError``
(message on stderr, no traceback), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from unified.errors import InputError, UnifiedError
from unified.graph import random_feed
from unified.plugins import registry

__all__ = ["main", "build_parser", "parse_delegates", "Progress"]


class Progress:
    """Stage lines on stderr with elapsed seconds: the progress indication
    for compiles and runs that take more than a moment."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:7.2f}s] {message}", file=self.stream, flush=True)


def parse_delegates(text: str | None) -> list | None:
    """``"tflite,onnxruntime:gpu"`` -> ``["tflite", ("onnxruntime", {"backend": "gpu"})]``."""
    if not text:
        return None
    out: list = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, backend = item.partition(":")
        out.append((name, {"backend": backend}) if backend else name)
    return out


def _session_options(args, progress):
    from unified.session import SessionOptions

    placement = {}
    for item in getattr(args, "place", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--place {item!r}: expected NODE_OR_OP=DELEGATE")
        placement[key] = value
    return SessionOptions(
        strict=args.strict,
        placement=placement,
        enable_profiling=getattr(args, "profile", False),
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        progress=progress,
        min_partition_nodes=args.min_partition_nodes,
    )


def _cmd_devices(args) -> int:
    reg = registry()
    rows = [("delegate", "status", "version", "backends", "note")]
    for name, delegate in reg.delegates.items():
        av = reg.availability(name)
        status = "ok" if av.ok and av.executes else ("compile-only" if av.ok else "unavailable")
        try:
            backends = ",".join(delegate.backends()) if av.ok else "-"
        except Exception as exc:
            backends, av = "-", av.__class__(False, f"backends() raised {exc!r}")
        rows.append((name, status, av.version or "-", backends, av.reason))
    for b in reg.broken:
        rows.append((b.name, "broken", "-", "-", b.reason))
    _table(rows)
    print()
    rows = [("backend", "status", "kind", "description")]
    for name, backend in reg.backends.items():
        try:
            av, info = backend.availability(), backend.info()
            rows.append((name, "ok" if av.ok else "unavailable", info.kind, info.description or av.reason))
        except Exception as exc:
            rows.append((name, "broken", "-", repr(exc)))
    _table(rows)
    return 0


def _table(rows) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def _open_session(args, progress):
    from unified.session import InferenceSession

    progress(f"loading {args.model}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = InferenceSession(args.model, parse_delegates(args.delegates), _session_options(args, progress))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return session


def _cmd_plan(args) -> int:
    progress = Progress(quiet=args.json or args.dot)
    session = _open_session(args, progress)
    if args.json:
        print(session.plan.to_json())
    elif args.dot:
        print(session.plan.to_dot())
    else:
        print(session.plan)
    if args.save_artifacts:
        _save_artifacts(session, Path(args.save_artifacts))
    return 0


def _save_artifacts(session, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for c in session.partitions:
        try:
            blob = c.executable.serialize()
        except NotImplementedError:
            continue
        path = out / f"{c.partition.name}_{c.partition.delegate}{c.executable.artifact_suffix}"
        path.write_bytes(blob)
        print(f"wrote {path} ({len(blob)} bytes)", file=sys.stderr)


def _load_inputs(items: Sequence[str] | None) -> dict[str, np.ndarray]:
    feed = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise InputError(f"--input {item!r}: expected NAME=FILE.npy")
        try:
            feed[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--input {name}: cannot read '{path}' as a .npy file ({exc})") from None
    return feed


def _cmd_run(args) -> int:
    progress = Progress()
    session = _open_session(args, progress)
    print(session.plan)
    given = _load_inputs(args.input)
    feed = random_feed([a for a in session.get_inputs() if a.name not in given], seed=args.seed)
    feed.update(given)
    drawn = sorted(set(feed) - set(given))
    if drawn:
        progress(f"random inputs for: {', '.join(drawn)}")
    times = []
    outputs = None
    for i in range(args.repeat):
        start = time.perf_counter()
        outputs = session.run(None, feed)
        times.append(time.perf_counter() - start)
        if args.repeat > 1:
            progress(f"run {i + 1}/{args.repeat}: {times[-1] * 1e3:.2f} ms")
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, outputs):
        print(f"output {name}: {value.dtype} {list(value.shape)} min={_stat(value, np.min)} max={_stat(value, np.max)}")
    print(f"latency: median {np.median(times) * 1e3:.3f} ms over {len(times)} run(s)")
    if args.profile:
        for p in session.profile:
            mean = p.total_seconds / p.runs * 1e3 if p.runs else 0.0
            print(
                f"  p{p.index} {p.delegate}/{p.backend}: compile {p.compile_seconds * 1e3:.1f} ms"
                f"{' (cache hit)' if p.cache_hit else ''}, run mean {mean:.3f} ms over {p.runs}"
            )
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, value in zip(names, outputs):
            path = out / (_safe(name) + ".npy")
            np.save(path, value)
            print(f"wrote {path}")
        if args.profile:
            data = [p.__dict__ for p in session.profile]
            (out / "profile.json").write_text(json.dumps(data, indent=2, default=str))
    if args.save_artifacts:
        _save_artifacts(session, Path(args.save_artifacts))
    return 0


def _stat(value: np.ndarray, fn) -> str:
    if value.size == 0 or value.dtype.kind not in "fiub":
        return "-"
    return f"{fn(value):.6g}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _add_session_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="path to a .onnx model")
    p.add_argument("--delegates", help="priority list, e.g. tflite,onnxruntime or onnxruntime:gpu")
    p.add_argument("--strict", action="store_true", help="fail instead of using the fallback delegate")
    p.add_argument("--place", action="append", metavar="NODE_OR_OP=DELEGATE", help="placement override")
    p.add_argument("--min-partition-nodes", type=int, default=1)
    p.add_argument("--cache-dir", help="compile cache directory (default ~/.cache/unified)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the compile cache")
    p.add_argument("--save-artifacts", metavar="DIR", help="write each partition's compiled artifact to DIR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unified", description="One inference API over many hardware stacks.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list delegates and backends with availability")
    p = sub.add_parser("plan", help="show which delegate runs which nodes")
    _add_session_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--dot", action="store_true", help="print the partition graph as Graphviz DOT")
    p = sub.add_parser("run", help="run a model (random inputs unless given)")
    _add_session_args(p)
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy")
    p.add_argument("--output-dir", metavar="DIR", help="write outputs as .npy files")
    p.add_argument("--profile", action="store_true", help="per-partition timings")
    p.add_argument("--repeat", type=int, default=1, help="number of runs (latency is their median)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p = sub.add_parser("compile", help="compile ahead of time into a bundle directory (no execution)")
    _add_session_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="bundle directory to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle in DIR")
    for name, command in registry().commands.items():
        if name in ("devices", "plan", "run", "compile"):
            continue
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def _cmd_compile(args) -> int:
    """``unified compile MODEL --delegates a,b -o DIR``: plan, compile, write a bundle."""
    from unified.bundle import compile_bundle

    progress = Progress()
    progress(f"loading {args.model}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = compile_bundle(
            args.model, args.output, parse_delegates(args.delegates), _session_options(args, progress), args.force
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    from unified.plan import Plan

    print(Plan.from_dict(manifest["plan"]))
    for name, meta in manifest["files"].items():
        print(f"wrote {Path(args.output) / name} ({meta['bytes']} bytes, sha256 {meta['sha256'][:12]})")
    print(f"wrote {Path(args.output) / 'manifest.json'}; load it with unified.InferenceSession.from_bundle()")
    return 0


_BUILTIN = {"devices": _cmd_devices, "plan": _cmd_plan, "run": _cmd_run, "compile": _cmd_compile}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unified`` script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = _BUILTIN.get(args.command) or registry().commands[args.command].run
    try:
        return int(handler(args) or 0)
    except UnifiedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
