"""``InferenceSession``: ONNX Runtime's calling convention over many delegates."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx

from unified.choices import DelegateSpec
from unified.compiler import CompiledPartition

from unified.errors import DelegateError, InputError, UnifiedError
from unified.graph import Graph, ModelLike, TensorInfo, onnx_dtype_to_numpy, type_string
from unified.onnx.topology import last_uses
from unified.pipeline import compile_model
from unified.plan import Plan
from unified.plugins import registry
from unified.profiling import SessionProfiling
from unified.trace import maybe_span

__all__ = ["InferenceSession", "SessionOptions", "NodeArg", "PartitionProfile", "DelegateSpec"]


@dataclass
class SessionOptions:
    """Options of one :class:`InferenceSession` (mutable, like ORT's).

    Attributes:
        cache_dir: compile-cache directory; None means ``default_cache_dir()``.
        use_cache: read and write the compile cache.
        fallback: delegate for nodes no listed delegate claims (None: none).
        strict: raise :class:`UnsupportedError` instead of using the fallback.
        placement: node name or op type -> delegate name; wins over priority.
        min_partition_nodes: partitions smaller than this go to the next
            delegate in line.
        free_dimensions: symbolic input dim name -> value, fixed before
            planning (like ORT's ``add_free_dimension_override_by_name``), so
            delegates that need static shapes (tflite) can take the model;
            inputs must then have exactly these sizes.
        enable_profiling: time each partition of each run (see ``profile``)
            and record one Chrome trace of compiling and running (load, plan,
            compile per partition, every run, partition and boundary
            hand-off, and per-op spans where the delegate reports them);
            ``end_profiling()`` writes it. Set it before the session is made.
        profile_file_prefix: file name prefix of the trace ``end_profiling()``
            writes (ONNX Runtime's option of the same name):
            ``{prefix}_{YYYY-MM-DD_HH-MM-SS_mmm}.json`` in the working directory.
        plugins: extra plugin objects to register for this session (each as an
            entry-point plugin would be), e.g. a delegate under development.
        specializations: for delegates that compile static shapes only, how
            many input-shape signatures of one partition are kept compiled
            (an LRU; each is also in the compile cache).
        progress: called with one-line status messages while compiling.
        tuning_inputs: for ``delegates="auto"``: input name -> sample array
            the candidates are measured on; inputs not given are drawn at
            random (seeded; symbolic dims from ``free_dimensions``, else 1).
        tuning_tolerance: the accuracy gate against ONNX Runtime fp32 outputs:
            None (``{"max_abs": 1e-3}``: max abs error <= 1e-3 x max(1,
            max|ref|) per output), ``{"cosine": 0.999}`` (cosine similarity
            per output), or a callable ``(outputs, reference) -> bool | (bool,
            error)`` over name -> array dicts. See ``unified.tune``.
        tuning_seconds: time budget of tuning (compiling and measuring), seconds.
        tuning_delegates: delegate names to build candidates from, in priority
            order (None: every available executing delegate in default order).
        tuning_repeats: timed runs per candidate (alternating, after warm-up;
            at least: sub-millisecond models get more, ``unified.tune.MIN_TIMED_SECONDS``).
        tuning_warmup: untimed runs per candidate before timing.
    """

    cache_dir: str | os.PathLike | None = None
    use_cache: bool = True
    fallback: str | None = "onnxruntime"
    strict: bool = False
    placement: Mapping[str, str] = field(default_factory=dict)
    min_partition_nodes: int = 1
    free_dimensions: Mapping[str, int] = field(default_factory=dict)
    enable_profiling: bool = False
    profile_file_prefix: str = "unified_profile_"
    plugins: Sequence[Any] = ()
    specializations: int = 8
    progress: Callable[[str], None] | None = None
    tuning_inputs: Mapping[str, Any] | None = None
    tuning_tolerance: Mapping[str, float] | Callable[..., Any] | None = None
    tuning_seconds: float = 60.0
    tuning_delegates: Sequence[str] | None = None
    tuning_repeats: int = 20
    tuning_warmup: int = 2


@dataclass(frozen=True)
class NodeArg:
    """A model input or output, as ``onnxruntime.NodeArg`` describes it.

    Attributes:
        name: value name.
        type: e.g. ``"tensor(float)"``.
        shape: list of ints, symbolic names (str) or None.
        dtype: the NumPy dtype (None when unknown).
    """

    name: str
    type: str
    shape: list
    dtype: np.dtype | None


@dataclass
class PartitionProfile:
    """Timings of one partition. Times in seconds.

    Attributes:
        index / delegate / backend: which partition.
        compile_seconds: compile (or cache load) wall time.
        cache_hit: loaded from the compile cache.
        runs: number of profiled runs.
        total_seconds / last_seconds: run wall time, summed and last.
        stats: the executable's ``last_run_stats`` after the last run (e.g.
            simulated cycles), or None.
    """

    index: int
    delegate: str
    backend: str
    compile_seconds: float
    cache_hit: bool
    runs: int = 0
    total_seconds: float = 0.0
    last_seconds: float = 0.0
    stats: Mapping[str, Any] | None = None


class _Step:
    """One partition in the run loop (precomputed for a fast ``run``)."""

    __slots__ = ("exe", "inputs", "release", "expect")

    def __init__(self, exe, inputs, release, expect):
        self.exe = exe
        self.inputs = inputs
        self.release = release
        self.expect = expect


def _expectations(model: onnx.ModelProto) -> tuple:
    """``(name, dtype, rank, fixed dims, type text)`` per tensor output of a partition model."""
    out = []
    for vi in model.graph.output:
        if not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        dims = list(tt.shape.dim) if tt.HasField("shape") else None
        fixed = tuple((i, d.dim_value) for i, d in enumerate(dims or ()) if d.HasField("dim_value"))
        shape = None if dims is None else [d.dim_value if d.HasField("dim_value") else None for d in dims]
        text = f"{type_string(vi.type)} {_shape_text(shape)}"
        out.append((vi.name, onnx_dtype_to_numpy(tt.elem_type), None if dims is None else len(dims), fixed, text))
    return tuple(out)


class InferenceSession(SessionProfiling):
    """Plan, compile and run an ONNX model over the registered delegates.

    Args:
        model: path to a ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.
        delegates: priority list of delegate names or ``(name, options)``
            pairs, like ONNX Runtime's ``providers``; options may hold
            ``"backend"`` (one of the delegate's ``backends()``) and
            delegate-specific keys. None: every available executing delegate
            with a default priority, fallback last. ``"auto"``: measure
            candidate plans on this machine and run the fastest that passes
            the accuracy gate (``unified.tune.tune``; the decision is cached,
            ``plan.tuning`` holds the candidate table).
        options: :class:`SessionOptions`.

    Raises:
        ModelError: the model cannot be loaded (see ``unified.load_model``).
        DelegateUnavailableError: an unknown or unavailable delegate name, a
            compile-only delegate, or an unknown backend.
        UnsupportedError: unclaimed nodes with ``strict``.
        DelegateError: a delegate failed to compile a partition it claimed.
        PluginError: a plugin in ``options.plugins`` was rejected.
        TuningError: ``delegates="auto"`` with a malformed tuning option, or
            without the ``onnxruntime`` delegate as its accuracy reference.
    """

    def __init__(
        self,
        model: ModelLike,
        delegates: Sequence[DelegateSpec] | str | None = None,
        options: SessionOptions | None = None,
    ):
        self.options = options or SessionOptions()
        self._registry = registry().extended(self.options.plugins)
        self._start_profiling(model)
        with maybe_span(self._tracer, "create session", "session"):
            if isinstance(delegates, str) and delegates == "auto":
                from unified.tune import tune

                with maybe_span(self._tracer, "tune (delegates='auto')", "compile"):
                    built = tune(model, self.options, reg=self._registry)
            else:
                built = compile_model(
                    model, delegates, self.options, reg=self._registry, execute=True, tracer=self._tracer
                )
        self._graph = built.graph
        self.plan: Plan = built.plan
        self._compiled: list[CompiledPartition] = built.partitions
        self._finish()

    @classmethod
    def _from_parts(
        cls, graph: Graph, plan: Plan, compiled: list[CompiledPartition], options: SessionOptions | None = None
    ) -> "InferenceSession":
        """A session over partitions compiled elsewhere (e.g. loaded from a bundle)."""
        self = cls.__new__(cls)
        self.options = options or SessionOptions()
        self._registry = registry().extended(self.options.plugins)
        self._start_profiling(graph.model)
        self._graph = graph
        self.plan = plan
        self._compiled = compiled
        self._finish()
        return self

    @classmethod
    def from_bundle(cls, path: str | os.PathLike, options: SessionOptions | None = None) -> "InferenceSession":
        """A session over an ahead-of-time bundle (``unified compile``), without recompiling.

        Every file's SHA-256, the bundle schema, the ``unified`` version and each
        delegate's framework version are checked first; then each partition's
        artifact is handed to its delegate's ``load()``. ``model`` of the
        returned session holds only the model's inputs and outputs.

        Args:
            path: the bundle directory.
            options: :class:`SessionOptions` (``plugins`` and ``enable_profiling``
                apply; planning and cache options do not).

        Raises:
            BundleError: a missing, tampered or mismatched file or version (the
                message names it), or an artifact its delegate rejects.
            DelegateUnavailableError: a delegate of the bundle is unknown,
                unavailable, or cannot execute here (e.g. Core ML off macOS).
        """
        from unified.bundle import load_bundle

        options = options or SessionOptions()
        graph, plan, compiled = load_bundle(path, registry().extended(options.plugins))
        return cls._from_parts(graph, plan, compiled, options)

    # --- construction helpers --------------------------------------------

    def _finish(self) -> None:
        g = self._graph
        self._inputs = g.input_infos()
        self._outputs = g.output_infos()
        self._input_names = [t.name for t in self._inputs]
        self._output_names = [t.name for t in self._outputs]
        self._output_set = set(self._output_names)
        self._checks = {t.name: _input_check(t) for t in self._inputs}
        # values no partition produces: initializers or inputs exposed as outputs
        produced = {o for c in self._compiled for o in c.partition.outputs}
        self._constants = {
            name: onnx.numpy_helper.to_array(g.initializers[name])
            for name in self._output_names
            if name not in produced and name in g.initializers
        }
        release = last_uses([c.partition.inputs for c in self._compiled], keep=self._output_names)
        self._steps = [
            _Step(c.executable, tuple(c.partition.inputs), tuple(free), _expectations(c.model))
            for c, free in zip(self._compiled, release)
        ]
        # one partition reading exactly the model's inputs: the feed goes to it as it is
        only = self._steps[0] if len(self._steps) == 1 and not self._constants else None
        self._single = only if only is not None and set(only.inputs) == set(self._input_names) else None
        self._attach_op_tracers()
        self._profile = [
            PartitionProfile(c.partition.index, c.partition.delegate, c.partition.backend, c.compile_seconds, c.cache_hit)
            for c in self._compiled
        ]
        for c in self._compiled:
            details = getattr(c.executable, "details", None)
            if details:
                self.plan = self.plan.with_details(c.partition.index, details)

    # --- ONNX Runtime API ---------------------------------------------------

    def get_inputs(self) -> list[NodeArg]:
        """The model's inputs (initializers excluded), in order."""
        return [_node_arg(t) for t in self._inputs]

    def get_outputs(self) -> list[NodeArg]:
        """The model's outputs, in order."""
        return [_node_arg(t) for t in self._outputs]

    def get_providers(self) -> list[str]:
        """Delegates used by the plan, in priority order (ORT's name for them)."""
        return list(self.plan.delegates)

    def run(self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None) -> list:
        """Run the model once.

        Args:
            output_names: outputs to return, or None for all, in model order.
            input_feed: input name -> array with the model's dtype and shape
                (C-contiguous arrays are passed on without a copy).
            run_options: accepted for ONNX Runtime compatibility; unused.

        Returns:
            A list of NumPy arrays, one per requested output; the caller owns them.

        Raises:
            InputError: a missing, unknown, mistyped or misshaped input, or an
                unknown output name.
            DelegateError: a delegate raised while running its partition.
        """
        if self.options.enable_profiling:
            return self._run_profiled(output_names, input_feed)
        feed = self._check_feed(input_feed)
        names = self._output_list(output_names)
        if self._single is not None:
            out = self._call(0, self._single, feed)
            return [out[n] if n in out else feed[n] for n in names]
        env = dict(feed)
        env.update(self._constants)
        for i, step in enumerate(self._steps):
            out = self._call(i, step, {n: env[n] for n in step.inputs})
            env.update(out)
            for n in step.release:
                env.pop(n, None)
        return [env[n] for n in names]

    def _output_list(self, output_names: Sequence[str] | None) -> list[str]:
        if output_names is None:
            return self._output_names
        names = list(output_names)
        unknown = [n for n in names if n not in self._output_set]
        if unknown:
            raise InputError(
                f"unknown output name(s) {unknown}; the model's outputs are: {', '.join(self._output_names)}"
            )
        return names

    def _call(self, i: int, step: _Step, args):
        try:
            out = step.exe.run(args)
        except UnifiedError:
            raise
        except Exception as exc:
            raise self._run_error(i, exc) from exc
        return self._checked_outputs(i, step.expect, out)

    def _run_error(self, i: int, exc: Exception) -> DelegateError:
        p = self.plan.partitions[i]
        return DelegateError(
            f"delegate '{p.delegate}' failed running partition {p.name} "
            f"({len(p.nodes)} nodes; first node '{p.nodes[0]}'): {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:1000]}"
        )

    def _checked_outputs(self, i: int, expect: tuple, out: Any) -> dict:
        """The partition-boundary contract: each declared output present, an
        ndarray (NumPy scalars become 0-d arrays) of the declared dtype, rank
        and fixed dims; else :class:`DelegateError` naming the delegate."""
        if type(out) is not dict:
            if not isinstance(out, Mapping):
                raise self._boundary_error(i, None, "a dict of output name -> array", type(out).__name__)
            out = dict(out)
        for name, dtype, rank, fixed, text in expect:
            v = out.get(name, _MISSING)
            if type(v) is not np.ndarray:
                if v is _MISSING:
                    raise self._boundary_error(i, name, text, "nothing")
                if isinstance(v, np.generic):
                    v = out[name] = np.asarray(v)
                elif not isinstance(v, np.ndarray):
                    raise self._boundary_error(i, name, text, type(v).__name__)
            if (dtype is not None and v.dtype != dtype) or (rank is not None and v.ndim != rank) or any(
                v.shape[k] != d for k, d in fixed
            ):
                raise self._boundary_error(i, name, text, f"{v.dtype} {list(v.shape)}")
        return out

    def _boundary_error(self, i: int, name: str | None, expected: str, got: str) -> DelegateError:
        p = self.plan.partitions[i]
        what = f"output '{name}'" if name else "its outputs"
        return DelegateError(
            f"delegate '{p.delegate}' returned {got} for {what} of partition {p.name} "
            f"({len(p.nodes)} nodes; first node '{p.nodes[0]}'), expected {expected}"
        )

    def _record(self, i: int, seconds: float, exe) -> None:
        prof = self._profile[i]
        prof.runs += 1
        prof.total_seconds += seconds
        prof.last_seconds = seconds
        prof.stats = getattr(exe, "last_run_stats", None)

    def _check_feed(self, input_feed: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(input_feed, Mapping):
            raise InputError(f"input_feed must be a dict of input name -> array, got {type(input_feed).__name__}")
        checks = self._checks
        if len(input_feed) != len(checks) or any(k not in checks for k in input_feed):
            extra = [k for k in input_feed if k not in checks]
            missing = [k for k in checks if k not in input_feed]
            expected = ", ".join(f"{t.name}: {t.type_str} {_shape_text(t.shape)}" for t in self._inputs)
            if extra:
                raise InputError(f"unknown input(s) {extra}; the model's inputs are: {expected}")
            raise InputError(f"missing input(s) {missing}; the model's inputs are: {expected}")
        feed = {}
        dims: dict[str, tuple[str, int]] = {}
        for name, value in input_feed.items():
            feed[name] = checks[name](value, dims)
        return feed

    # --- extras ---------------------------------------------------------------

    @property
    def profile(self) -> list[PartitionProfile]:
        """Per-partition compile time, and run times when ``enable_profiling``."""
        return self._profile

    @property
    def partitions(self) -> list[CompiledPartition]:
        """The compiled partitions (their ONNX models and executables)."""
        return self._compiled

    @property
    def model(self) -> onnx.ModelProto:
        """The checked, shape-inferred model."""
        return self._graph.model


_MISSING = object()


def _node_arg(t: TensorInfo) -> NodeArg:
    return NodeArg(t.name, t.type_str, list(t.shape) if t.shape is not None else [], t.dtype)


def _shape_text(shape) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _input_check(t: TensorInfo):
    """A fast validator for one input: dtype, rank, fixed dims, symbolic dims."""
    if t.kind != "tensor":
        return _structured_check(t)
    name, dtype, shape = t.name, t.dtype, t.shape
    fixed = [(i, d) for i, d in enumerate(shape or ()) if isinstance(d, int)]
    symbolic = [(i, d) for i, d in enumerate(shape or ()) if isinstance(d, str)]
    rank = None if shape is None else len(shape)

    def check(value: Any, dims: dict) -> np.ndarray:
        if type(value) is not np.ndarray:
            if not isinstance(value, (np.ndarray, np.generic, list, tuple, int, float, bool)):
                raise InputError(
                    f"input '{name}' must be a numpy.ndarray of {t.type_str}, got {type(value).__name__}"
                )
            value = np.asarray(value)
        if dtype is not None and value.dtype != dtype:
            raise InputError(
                f"input '{name}' has dtype {value.dtype}, expected {dtype} ({t.type_str}); "
                f"convert it with .astype(np.{dtype.name})"
            )
        if rank is not None and value.ndim != rank:
            raise InputError(
                f"input '{name}' has rank {value.ndim} (shape {list(value.shape)}), expected rank {rank} "
                f"with shape {_shape_text(shape)}"
            )
        for i, d in fixed:
            if value.shape[i] != d:
                raise InputError(
                    f"input '{name}' has shape {list(value.shape)}, expected {_shape_text(shape)} "
                    f"(dim {i} must be {d})"
                )
        for i, sym in symbolic:
            seen = dims.get(sym)
            if seen is None:
                dims[sym] = (name, value.shape[i])
            elif seen[1] != value.shape[i]:
                raise InputError(
                    f"input '{name}' dim {i} ('{sym}') is {value.shape[i]}, but input '{seen[0]}' set "
                    f"'{sym}' = {seen[1]}; dims with the same name must match"
                )
        if not value.flags.c_contiguous:
            value = np.ascontiguousarray(value)
        return value

    return check


def _structured_check(t: TensorInfo):
    """Validator for a sequence/optional/map input: Python containers of arrays.

    A sequence is a list or tuple of arrays, an optional is None or its
    element, a map is a dict; element dtypes and ranks are checked.
    """

    def check_value(value: Any, tp, where: str) -> Any:
        which = tp.WhichOneof("value") if tp is not None else None
        if which == "sequence_type":
            if not isinstance(value, (list, tuple)):
                raise InputError(f"input {where} must be a list of arrays ({type_string(tp)}), got {type(value).__name__}")
            return [check_value(v, tp.sequence_type.elem_type, f"{where}[{i}]") for i, v in enumerate(value)]
        if which == "optional_type":
            return None if value is None else check_value(value, tp.optional_type.elem_type, where)
        if which == "map_type":
            if not isinstance(value, dict):
                raise InputError(f"input {where} must be a dict ({type_string(tp)}), got {type(value).__name__}")
            return value
        if which == "tensor_type":
            arr = value if type(value) is np.ndarray else np.asarray(value)
            want = onnx_dtype_to_numpy(tp.tensor_type.elem_type)
            if want is not None and arr.dtype != want:
                raise InputError(f"input {where} has dtype {arr.dtype}, expected {want} ({type_string(tp)})")
            if tp.tensor_type.HasField("shape") and arr.ndim != len(tp.tensor_type.shape.dim):
                raise InputError(f"input {where} has rank {arr.ndim}, expected {len(tp.tensor_type.shape.dim)}")
            return np.require(arr, requirements="C")  # not ascontiguousarray: it makes a 0-d array 1-d
        return value

    def check(value: Any, dims: dict) -> Any:
        return check_value(value, t.type_proto, f"'{t.name}'")

    return check
