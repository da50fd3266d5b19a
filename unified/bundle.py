"""Ahead-of-time bundles: a model planned and compiled once, loaded without recompiling.

A bundle is a directory::

    manifest.json          what is below, with a SHA-256 per file
    p0_coreml.onnx         partition 0 as handed to its delegate
    p0_coreml.mlpackage.zip  its compiled artifact (Executable.serialize())
    p1_onnxruntime.onnx    partition 1 (ONNX Runtime's artifact *is* the partition)
    ...

:func:`compile_bundle` plans and compiles without executing anything, so a
compile-only delegate (Core ML off macOS) can build bundles for its target
devices. :func:`load_bundle` (behind ``InferenceSession.from_bundle``)
verifies the manifest's schema, the ``unified`` version and every delegate's
framework version, and the SHA-256 of every file, then rebuilds each
executable with ``Delegate.load(artifact, partition, options)``; it never
compiles. Anything tampered with or mismatched raises :class:`BundleError`
naming the file or version at fault.

This works for every delegate whose executables implement ``serialize()`` and
which overrides ``Delegate.load`` (the default ``load`` recompiles, which a
bundle must not do); others are refused when the bundle is written.

Manifest (``BUNDLE_SCHEMA_VERSION`` 1), JSON with sorted keys::

    format, schema_version, unified_version, onnx_version
    model: {name, inputs: [signature], outputs: [signature]}
        signature = {name, elem_type, dtype, shape: [int | str | null]}
    delegates: {name: {framework_version, options}}
    plan: Plan.to_dict()
    partitions: [{index, delegate, backend, partition_file, artifact_file, artifact_suffix}]
    files: {relative path: {sha256, bytes}}
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import onnx
from onnx import helper

import unified
from unified.compiler import CompiledPartition
from unified.delegate import CompileOptions, Delegate, Executable
from unified.errors import BundleError, DelegateError, DelegateUnavailableError, UnifiedError
from unified.graph import Graph, ModelLike, TensorInfo
from unified.plan import Plan
from unified.pipeline import compile_model, plan_model
from unified.plugins import PluginRegistry, registry

__all__ = ["BUNDLE_SCHEMA_VERSION", "MANIFEST", "compile_bundle", "read_manifest", "load_bundle"]

BUNDLE_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_FORMAT = "unified-bundle"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signature(t: TensorInfo) -> dict[str, Any]:
    return {
        "name": t.name,
        "elem_type": t.elem_type,
        "dtype": t.type_str,
        "shape": None if t.shape is None else list(t.shape),
    }


def _loads_without_compiling(delegate: Delegate) -> bool:
    return type(delegate).load is not Delegate.load


def compile_bundle(
    model: ModelLike,
    out_dir: str | os.PathLike,
    delegates: Sequence | None = None,
    options=None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Plan and compile ``model`` for ``delegates`` and write a bundle directory.

    Nothing is executed: compile-only delegates (Core ML off macOS) work.

    Args:
        model: path, bytes or ``onnx.ModelProto``.
        out_dir: the bundle directory; created if missing.
        delegates: priority list like ``InferenceSession``'s (names or
            ``(name, options)`` pairs); None: every available executing delegate.
        options: a ``SessionOptions`` (fallback, strict, placement,
            min_partition_nodes, cache, plugins, progress are honoured).
        overwrite: replace the files of an existing bundle in ``out_dir``.

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).

    Raises:
        ModelError, UnsupportedError, DelegateUnavailableError, DelegateError:
            as ``InferenceSession`` would.
        BundleError: ``out_dir`` is not empty (without ``overwrite``), or a
            delegate cannot serialize its executables or load them back
            without recompiling.
    """
    from unified.session import SessionOptions

    options = options or SessionOptions()
    out = Path(out_dir)
    _prepare_dir(out, overwrite)
    reg = registry().extended(options.plugins)
    planned = plan_model(model, delegates, options, reg=reg, execute=False, warn=False)
    _check_bundleable(planned)
    built = compile_model(planned, delegates, options, reg=reg, execute=False)
    files, parts = _partition_files(built.partitions)
    graph, plan = built.graph, built.plan
    manifest = {
        "format": _FORMAT,
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "unified_version": unified.__version__,
        "onnx_version": onnx.__version__,
        "model": {
            "name": graph.model.graph.name,
            "inputs": [_signature(t) for t in graph.input_infos()],
            "outputs": [_signature(t) for t in graph.output_infos()],
        },
        "delegates": {
            name: {"framework_version": c.delegate.version(), "options": dict(c.options or {})}
            for name, c in built.used.items()
            if name in {p.delegate for p in plan.partitions}
        },
        "plan": json.loads(plan.to_json()),
        "partitions": parts,
        "files": {name: {"sha256": _sha256(data), "bytes": len(data)} for name, data in sorted(files.items())},
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return manifest


def _check_bundleable(planned) -> None:
    """Refuse, before compiling, a plan a bundle cannot hold.

    Raises:
        BundleError: an output no partition produces, a delegate without
            ``Delegate.load``, or a partition specialized at run time.
    """
    graph, plan = planned.graph, planned.plan
    produced = {o for p in plan.partitions for o in p.outputs} | set(plan.inputs)
    missing = [o.name for o in graph.outputs if o.name not in produced]
    if missing:
        raise BundleError(
            f"model output(s) {missing} are initializers no partition produces; bundles do not store "
            "loose constants (make them outputs of a node, e.g. Identity)"
        )
    for p in plan.partitions:
        if not _loads_without_compiling(planned.used[p.delegate].delegate):
            raise BundleError(
                f"delegate '{p.delegate}' does not implement Delegate.load(), so loading its partitions from a "
                "bundle would recompile them; it cannot be bundled"
            )
        if p.specialized:
            raise BundleError(
                f"partition {p.name} on '{p.delegate}' has symbolic input dims, and '{p.delegate}' compiles static "
                "shapes only; fix them with free_dimensions (--free-dim NAME=VALUE) to bundle it"
            )


def _partition_files(compiled) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """Each compiled partition's ONNX file and artifact.

    Returns:
        (file name -> bytes, the manifest's ``partitions`` entries).

    Raises:
        BundleError: a delegate cannot serialize, or a partition computes
            outputs as constants.
    """
    files: dict[str, bytes] = {}
    parts = []
    for c in compiled:
        p = c.partition
        stem = f"{p.name}_{p.delegate}"
        try:
            blob = c.executable.serialize()
        except NotImplementedError:
            raise BundleError(
                f"delegate '{p.delegate}' cannot serialize its executables (partition {p.name}); it cannot be bundled"
            ) from None
        spec = getattr(c.executable, "specialization", None)
        if spec is not None and spec.constants:
            raise BundleError(
                f"partition {p.name} on '{p.delegate}' computes outputs {sorted(spec.constants)} as constants; "
                "bundles cannot store them yet"
            )
        onnx_bytes = (spec.model if spec is not None else c.model).SerializeToString(deterministic=True)
        partition_file = f"{stem}.onnx"
        suffix = c.executable.artifact_suffix
        artifact_file = partition_file if blob == onnx_bytes else f"{stem}{suffix}"
        if artifact_file == partition_file and blob != onnx_bytes:
            artifact_file = f"{stem}.artifact{suffix}"
        files[partition_file] = onnx_bytes
        files[artifact_file] = blob
        parts.append({
            "index": p.index, "delegate": p.delegate, "backend": p.backend,
            "partition_file": partition_file, "artifact_file": artifact_file, "artifact_suffix": suffix,
        })
    return files, parts


def _prepare_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BundleError(f"bundle path '{out}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    existing = [p for p in out.iterdir()]
    if not existing:
        return
    if not overwrite:
        raise BundleError(f"bundle directory '{out}' is not empty; choose a new directory or pass overwrite=True (--force)")
    old = out / MANIFEST
    if not old.is_file():
        raise BundleError(f"'{out}' is not empty and holds no bundle ({MANIFEST} missing); refusing to overwrite it")
    try:
        names = list(json.loads(old.read_text()).get("files", {}))
    except (OSError, ValueError, AttributeError):
        names = []
    for name in names:
        target = (out / name).resolve()
        if target.parent == out.resolve() and target.is_file():
            target.unlink()
    old.unlink()


def read_manifest(path: str | os.PathLike, check_versions: bool = True) -> dict[str, Any]:
    """Read and verify a bundle's manifest and files (no delegate involved).

    Checks the format and schema version, the ``unified`` version (when
    ``check_versions``), that every listed file exists with its recorded size
    and SHA-256, and that every partition's files are listed.

    Returns:
        The manifest dict.

    Raises:
        BundleError: naming the missing, unreadable, tampered or mismatched file
            or version.
    """
    root = Path(path)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"'{root}' is not a bundle: {MANIFEST} is missing (write one with `unified compile`)")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"bundle manifest '{mpath}' is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise BundleError(f"'{mpath}' is not a unified bundle manifest (format {_FORMAT!r} expected)")
    if manifest.get("schema_version") != BUNDLE_SCHEMA_VERSION:
        raise BundleError(
            f"bundle '{root}' has schema version {manifest.get('schema_version')!r}; this unified reads "
            f"version {BUNDLE_SCHEMA_VERSION}. Recompile it with `unified compile`"
        )
    if check_versions and manifest.get("unified_version") != unified.__version__:
        raise BundleError(
            f"bundle '{root}' was written by unified {manifest.get('unified_version')}, this is unified "
            f"{unified.__version__}; recompile it with `unified compile`"
        )
    files = manifest.get("files") or {}
    for part in manifest.get("partitions", []):
        for key in ("partition_file", "artifact_file"):
            if part.get(key) not in files:
                raise BundleError(f"bundle manifest lists partition p{part.get('index')} {key} "
                                  f"'{part.get(key)}' without a hash")
    for name, meta in files.items():
        file = root / name
        if Path(name).name != name:
            raise BundleError(f"bundle manifest names file '{name}' outside the bundle directory")
        if not file.is_file():
            raise BundleError(f"bundle file '{name}' is missing from '{root}'")
        data = file.read_bytes()
        if len(data) != meta.get("bytes") or _sha256(data) != meta.get("sha256"):
            raise BundleError(
                f"bundle file '{name}' does not match its SHA-256 in {MANIFEST} (tampered with or corrupt); "
                "recompile the bundle with `unified compile`"
            )
    return manifest


class _SignatureGraph(Graph):
    """The model's interface (inputs and outputs, no nodes): all a session built
    from a bundle needs of a :class:`Graph`. ``model`` is a node-less ModelProto
    with those inputs and outputs."""

    def __init__(self, name: str, inputs: list[dict], outputs: list[dict]):  # noqa: D107 - no load_model here
        def vi(s):
            shape = None if s["shape"] is None else [d if d is not None else None for d in s["shape"]]
            return helper.make_tensor_value_info(s["name"], int(s["elem_type"]), shape)

        self.inputs = [vi(s) for s in inputs]
        self.outputs = [vi(s) for s in outputs]
        self.model = helper.make_model(helper.make_graph([], name or "bundle", self.inputs, self.outputs))
        self.opsets = {}
        self.initializers = {}
        self.types = {v.name: v.type for v in self.inputs + self.outputs}
        self.nodes = []
        self.node_names = []
        self._constants = {}


def load_bundle(
    path: str | os.PathLike, reg: PluginRegistry | None = None
) -> tuple[Graph, Plan, list[CompiledPartition]]:
    """Verify a bundle and rebuild its executables without compiling.

    Args:
        path: the bundle directory.
        reg: plugin registry to find delegates in (default: the process's).

    Returns:
        ``(graph, plan, compiled)`` for ``InferenceSession._from_parts``;
        ``graph`` carries only the model's input and output signatures.

    Raises:
        BundleError: tampered or missing files, schema/unified/framework
            version mismatch, or an artifact its delegate rejects.
        DelegateUnavailableError: a delegate of the bundle is unknown,
            unavailable, or cannot execute here (e.g. Core ML off macOS).
    """
    reg = reg or registry()
    root = Path(path)
    manifest = read_manifest(root)
    try:
        plan = Plan.from_dict(manifest["plan"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"bundle '{root}': the plan in {MANIFEST} is invalid ({exc})") from None
    delegates: dict[str, Delegate] = {}
    for name, meta in manifest.get("delegates", {}).items():
        delegate = reg.get(name)
        av = reg.availability(name)
        if not av.ok:
            raise DelegateUnavailableError(f"delegate '{name}' is unavailable: {av.reason}")
        backends = {q.backend for q in plan.partitions if q.delegate == name}
        if not av.executes and not all(  # one backend may execute where the delegate only compiles
                reg.availability(name, b).ok and reg.availability(name, b).executes for b in backends or {None}):
            raise DelegateUnavailableError(
                f"delegate '{name}' cannot execute here ({av.reason}); the bundle '{root}' needs it to run. "
                "Load the bundle on a host where it executes"
            )
        have = delegate.version()
        if have != meta.get("framework_version"):
            raise BundleError(
                f"bundle '{root}' was compiled with delegate '{name}' framework version "
                f"{meta.get('framework_version')!r}, this host has {have!r}; recompile it with `unified compile`"
            )
        delegates[name] = delegate
    compiled = []
    parts = {p["index"]: p for p in manifest.get("partitions", [])}
    for p in plan.partitions:
        entry = parts.get(p.index)
        if entry is None or entry.get("delegate") != p.delegate or p.delegate not in delegates:
            raise BundleError(f"bundle '{root}': partition {p.name} ({p.delegate}) has no matching manifest entry")
        start = time.perf_counter()
        model = onnx.ModelProto()
        try:
            model.ParseFromString((root / entry["partition_file"]).read_bytes())
        except Exception as exc:
            raise BundleError(f"bundle file '{entry['partition_file']}' is not an ONNX model: {exc}") from None
        artifact = (root / entry["artifact_file"]).read_bytes()
        opts = CompileOptions(
            backend=p.backend, options=dict(manifest["delegates"][p.delegate].get("options") or {}),
            partition_name=p.name,
        )
        try:
            exe = delegates[p.delegate].load(artifact, model, opts)
        except UnifiedError as exc:
            raise BundleError(f"bundle file '{entry['artifact_file']}' was rejected by '{p.delegate}': {exc}") from exc
        except Exception as exc:
            raise BundleError(
                f"bundle file '{entry['artifact_file']}' was rejected by '{p.delegate}': {type(exc).__name__}: {exc}"
            ) from exc
        _check_io(exe, model, p.delegate, entry["artifact_file"])
        compiled.append(CompiledPartition(p, model, exe, time.perf_counter() - start, False))
    m = manifest["model"]
    return _SignatureGraph(m.get("name", ""), m["inputs"], m["outputs"]), plan, compiled


def _check_io(exe: Executable, model: onnx.ModelProto, delegate: str, file: str) -> None:
    if not isinstance(exe, Executable):
        raise DelegateError(f"delegate '{delegate}' returned {type(exe).__name__} from load(), expected an Executable")
    inits = {t.name for t in model.graph.initializer}
    want_in = [i.name for i in model.graph.input if i.name not in inits]
    want_out = [o.name for o in model.graph.output]
    if list(exe.input_names) != want_in or list(exe.output_names) != want_out:
        raise BundleError(
            f"bundle file '{file}' loads with inputs {list(exe.input_names)} / outputs {list(exe.output_names)}, "
            f"but its partition has {want_in} / {want_out}"
        )
