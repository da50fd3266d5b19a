"""The ``unified`` command line.

Commands::

    unified devices                      delegates and backends here, with reasons
    unified plan MODEL [--delegates a,b] [--json | --dot] [--strict] [--compile]
                       [--explain] [--html OUT.html] [--model-explorer OUT.json [--errors F] [--latency F]]
    unified run MODEL [--input NAME=FILE.npy ...] [--delegates a,b]
                      [--output-dir DIR] [--profile] [--trace OUT.json] [--repeat N]
    unified compile MODEL --delegates a,b -o DIR [--force]   ahead-of-time bundle
    unified tune MODEL [--input NAME=FILE.npy ...] [--delegates a,b] [--force]
                       [--json OUT] [--seconds S] [--repeats N] [--cosine C | --max-abs K]
    unified quantize MODEL -o OUT.onnx [--calibration DIR | --samples N] [--weights int4|mxfp4]

``tune`` measures candidate plans (``delegates="auto"``, ``unified.tune``),
prints the candidate table and the chosen plan; ``--delegates`` there names
the delegates candidates are built from. ``plan``, ``run``, ``compile`` and
``tune`` take ``--free-dim NAME=VALUE`` (fix a
symbolic input dim) and ``-v`` (debug lines, and the frameworks' own
logging, which is otherwise silenced; ``UNIFIED_LOG_LEVEL`` does the same).

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
from unified.debug.commands import COMMANDS as DEBUG_COMMANDS
from unified.graph import random_feed
from unified.log import configure_cli_logging, logger as log
from unified.plugins import registry

__all__ = ["main", "build_parser", "parse_delegates", "parse_free_dims"]


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


def parse_free_dims(items: Sequence[str] | None) -> dict[str, int]:
    """``["batch=1", "height=320"]`` -> ``{"batch": 1, "height": 320}``.

    Raises:
        InputError: an item that is not NAME=POSITIVE_INT.
    """
    dims: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit() or int(value) < 1:
            raise InputError(f"--free-dim {item!r}: expected NAME=VALUE with a positive integer VALUE, e.g. batch=1")
        dims[name.strip()] = int(value)
    return dims


def _session_options(args):
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
        enable_profiling=getattr(args, "profile", False) or bool(getattr(args, "trace", None)),
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        min_partition_nodes=args.min_partition_nodes,
        free_dimensions=parse_free_dims(args.free_dim),
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
    """Print ``rows`` (the first is the header) as a plain text table."""
    from tabulate import tabulate

    print(tabulate(rows[1:], rows[0], tablefmt="simple", disable_numparse=True))


def _warnings_to_log(caught) -> None:
    for w in caught:
        log.warning("%s", w.message)


def _open_session(args):
    from unified.session import InferenceSession

    log.info("loading %s", args.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = InferenceSession(args.model, parse_delegates(args.delegates), _session_options(args))
    _warnings_to_log(caught)
    return session


def _cmd_plan(args) -> int:
    """``unified plan``: load and plan (no compiling) unless ``--compile``."""
    from unified.pipeline import compile_model, plan_model

    log.info("planning %s", args.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.compile:
            built = compile_model(args.model, parse_delegates(args.delegates), _session_options(args), execute=False)
        else:
            built = plan_model(args.model, parse_delegates(args.delegates), _session_options(args), execute=False)
    _warnings_to_log(caught)
    from unified.visualize.commands import plan_outputs

    if plan_outputs(args, built, _session_options(args)):
        pass  # --explain printed the plan and its explanation
    elif args.json:
        print(built.plan.to_json())
    elif args.dot:
        print(built.plan.to_dot())
    else:
        print(built.plan)
        if args.compile:
            for delegate, where, reason in built.compile_failures:
                print(f"compile failed on {delegate} for {where}, re-planned: {reason}")
    if args.save_artifacts:
        if not args.compile:
            raise InputError("--save-artifacts needs --compile (plan alone compiles nothing)")
        _save_artifacts(built.partitions, Path(args.save_artifacts))
    return 0


def _save_artifacts(partitions, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for c in partitions:
        try:
            blob = c.executable.serialize()
        except NotImplementedError:
            continue
        path = out / f"{c.partition.name}_{c.partition.delegate}{c.executable.artifact_suffix}"
        path.write_bytes(blob)
        log.info("wrote %s (%d bytes)", path, len(blob))


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
    session = _open_session(args)
    print(session.plan)
    given = _load_inputs(args.input)
    dims = parse_free_dims(args.free_dim)
    feed = random_feed([a for a in session.get_inputs() if a.name not in given], seed=args.seed, dims=dims)
    feed.update(given)
    drawn = sorted(set(feed) - set(given))
    if drawn:
        log.info("random inputs for: %s", ", ".join(drawn))
    times = []
    outputs = None
    specialized = [p.name for p in session.plan.partitions if p.specialized]
    if specialized:  # the first run compiles them for these shapes: keep it out of the latency
        start = time.perf_counter()
        outputs = session.run(None, feed)
        log.info("first run, compiling %s for these input shapes: %.2f s", ", ".join(specialized),
                 time.perf_counter() - start)
    for i in range(args.repeat):
        start = time.perf_counter()
        outputs = session.run(None, feed)
        times.append(time.perf_counter() - start)
        if args.repeat > 1:
            log.info("run %d/%d: %.2f ms", i + 1, args.repeat, times[-1] * 1e3)
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
        _save_artifacts(session.partitions, Path(args.save_artifacts))
    if args.trace:
        print(f"wrote trace {session.end_profiling(args.trace)} (open it in ui.perfetto.dev or chrome://tracing)")
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
    p.add_argument("--free-dim", action="append", metavar="NAME=VALUE",
                   help="fix a symbolic input dim, like ONNX Runtime's free-dimension overrides (repeatable)")
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="debug lines, and the frameworks' own logging (torch, TF Lite, ...)")


def build_parser() -> argparse.ArgumentParser:
    """The ``unified`` argument parser: built-in commands plus those plugins contribute."""
    parser = argparse.ArgumentParser(prog="unified", description="One inference API over many hardware stacks.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="debug lines, and the frameworks' own logging (or set UNIFIED_LOG_LEVEL=DEBUG)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("devices", help="list delegates and backends with availability")
    p = sub.add_parser("plan", help="show which delegate runs which nodes")
    _add_session_args(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--dot", action="store_true", help="print the partition graph as Graphviz DOT")
    p.add_argument("--compile", action="store_true",
                   help="also compile every partition, to verify it (shows what fell back at compile time and why)")
    from unified.visualize.commands import add_plan_arguments

    add_plan_arguments(p)
    p = sub.add_parser("run", help="run a model (random inputs unless given)")
    _add_session_args(p)
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy")
    p.add_argument("--output-dir", metavar="DIR", help="write outputs as .npy files")
    p.add_argument("--profile", action="store_true", help="per-partition timings")
    p.add_argument("--trace", metavar="OUT.json",
                   help="write a Chrome trace (compile, runs, partitions, hand-offs, ops) for Perfetto")
    p.add_argument("--repeat", type=int, default=1, help="number of runs (latency is their median)")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs")
    p = sub.add_parser("compile", help="compile ahead of time into a bundle directory (no execution)")
    _add_session_args(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="bundle directory to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle in DIR")
    p = sub.add_parser("tune", help="measure candidate plans here and cache the fastest accurate one")
    _add_session_args(p)
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="sample input (others are random)")
    p.add_argument("--force", action="store_true", help="measure again even if a decision is cached")
    p.add_argument("--json", metavar="OUT", help="write the plan with its candidate table as JSON to OUT")
    p.add_argument("--seconds", type=float, default=60.0, help="tuning budget, seconds (compiling and measuring)")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per candidate")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per candidate first")
    gate = p.add_mutually_exclusive_group()
    gate.add_argument("--max-abs", type=float, metavar="K", help="gate: max abs error <= K x max(1, max|ref|) (1e-3)")
    gate.add_argument("--cosine", type=float, metavar="C", help="gate: cosine similarity to ORT >= C per output")
    for command in DEBUG_COMMANDS:  # compare, bisect (unified.debug)
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    from unified.quantize.cli import add_arguments as quantize_arguments

    quantize_arguments(sub.add_parser("quantize", help="quantize a float model: int8 QDQ, or --weights int4|mxfp4"))
    for name, command in registry().commands.items():
        if name in ("devices", "plan", "run", "compile", "tune", "quantize") or name in _DEBUG:
            continue
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def _cmd_compile(args) -> int:
    """``unified compile MODEL --delegates a,b -o DIR``: plan, compile, write a bundle."""
    from unified.bundle import compile_bundle
    from unified.plan import Plan

    log.info("loading %s", args.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = compile_bundle(args.model, args.output, parse_delegates(args.delegates), _session_options(args),
                                  args.force)
    _warnings_to_log(caught)
    print(Plan.from_dict(manifest["plan"]))
    for name, meta in manifest["files"].items():
        print(f"wrote {Path(args.output) / name} ({meta['bytes']} bytes, sha256 {meta['sha256'][:12]})")
    print(f"wrote {Path(args.output) / 'manifest.json'}; load it with unified.InferenceSession.from_bundle()")
    return 0


def _cmd_tune(args) -> int:
    """``unified tune MODEL``: measure candidate plans, print the table, cache (and optionally write) the choice."""
    from unified.tune import tune

    options = _session_options(args)
    specs = parse_delegates(args.delegates)
    if specs and any(not isinstance(d, str) for d in specs):
        raise InputError("tune --delegates takes delegate names only (each candidate uses its default backend)")
    options.tuning_delegates = specs
    options.tuning_inputs = _load_inputs(args.input)
    options.tuning_seconds, options.tuning_repeats, options.tuning_warmup = args.seconds, args.repeats, args.warmup
    if args.max_abs is not None:
        options.tuning_tolerance = {"max_abs": args.max_abs}
    elif args.cosine is not None:
        options.tuning_tolerance = {"cosine": args.cosine}
    log.info("tuning %s (budget %g s)", args.model, args.seconds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = tune(args.model, options, force=args.force)
    _warnings_to_log(caught)
    print(built.plan.tuning.table())
    print()
    print(built.plan)
    if args.json:
        Path(args.json).write_text(built.plan.to_json())
        print(f"wrote {args.json}")
    return 0


def _cmd_quantize(args) -> int:
    """``unified quantize MODEL -o OUT``: see :mod:`unified.quantize.cli`."""
    from unified.quantize.cli import run

    return run(args)


_BUILTIN = {"devices": _cmd_devices, "plan": _cmd_plan, "run": _cmd_run, "compile": _cmd_compile, "tune": _cmd_tune,
            "quantize": _cmd_quantize}
_DEBUG = {c.name: c.run for c in DEBUG_COMMANDS}
_BUILTIN.update(_DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unified`` script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = args.command != "tune" and bool(getattr(args, "json", False) or getattr(args, "dot", False))
    configure_cli_logging(getattr(args, "verbose", 0) or 0, quiet=quiet)
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
