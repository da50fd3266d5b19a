"""``delegates="auto"``: measure candidate plans here, gate them on accuracy, cache the choice.

What is searched (all candidates are whole plans, measured end to end, so
what crosses a partition boundary is in the measurement, not assumed):

1. ``default``: the priority plan over the candidate delegates
   (``SessionOptions.tuning_delegates``, else every available executing
   delegate in default order), fallback last: what ``delegates=None`` runs.
2. Each candidate delegate alone, with the fallback (``delegates=[name]``);
   the fallback delegate alone first, as it compiles fast and every other
   plan leans on it.
3. Per-partition variants: for each partition of the default plan (largest
   first) and each other candidate delegate that claims all its nodes, the
   default plan with that partition placed on that delegate
   (``"default, p1->onnxruntime"``).
4. ``combined``: when variants for two or more partitions each beat the
   default plan, all those moves together.
5. A final round: the candidates within :data:`FINAL_ROUND_SPREAD` (25 %) of
   the fastest, and ``combined``, timed again alternating among themselves
   only, each in a process of its own (:mod:`unified.tune_worker`: loaded
   from the compile cache, as a user's session would run it, without the
   other candidates' runtimes beside it); the choice is made on that
   round's times. It ends :data:`FINAL_ROUND_MARGIN` (1 %) of the budget
   before the deadline, leaving time to close its children. Without the
   compile cache, or with plugins given as objects, the round runs in
   ``tune``'s process.

The choice: the fastest candidate that passes the accuracy gate, except that
a plan with fewer partitions within :data:`SIMPLER_PLAN_MARGIN` (5 %) of it
wins: each cut between runtimes costs more in use (threads of two runtimes
to wake, caches shared) than in tune's steady loop.

This is a coordinate search over the default plan's partitions, not a full
search over every segmentation of the graph: a delegate that would win only
on a cut the default planner never makes is not found. Candidates whose plans
assign every node as an earlier candidate's did are listed, not measured.

Measuring: every candidate runs ``tuning_warmup`` untimed runs as soon as it
is compiled, then ``tuning_repeats`` timed runs (more for sub-millisecond
models, until the fastest candidate has run :data:`MIN_TIMED_SECONDS`) in at
least four rounds that alternate between candidates, a block of at least four
consecutive runs and 20 ms per candidate and round, its first run not counted
(a run right after another runtime's is slowed by its spinning threads), on
``SessionOptions.tuning_inputs`` (inputs not given: seeded uniform random
values, symbolic dims from ``free_dimensions``, else 1). The accuracy gate
compares each candidate's first outputs with ONNX Runtime's fp32 outputs (the
``onnxruntime`` delegate alone, graph optimizations disabled: ``reference``).
A candidate that fails the gate is reported and never chosen; when nothing
passes, the reference plan runs.

Budget: ``tuning_seconds`` covers compiling and measuring. Candidates are
compiled in a child process of their own (:class:`unified.tune_worker.Compiler`;
this process then loads them from the compile cache), and no candidate is
compiled once only :data:`MEASURE_RESERVE` (25 %) of the budget is left: a
compile still running then is stopped, and its candidate is listed as not
measured. The reference and the first candidate (``default``) are always
built, whatever the time. Without the compile cache or with plugins given as
objects, candidates compile in this process, where a compile under way is
not cut short. Every candidate that was built is timed (one block at least,
and rounds up to four while the overrun stays within :data:`MEASURE_GRACE`, 5 %
of the budget), so there is always a choice; when the budget runs out the
best candidate measured so far wins and ``Plan.tuning.budget_exhausted`` says
so. All candidates stay compiled (in memory) until the choice is made.

Cache: the decision (the chosen delegates and placement, and the candidate
table) is stored as a small JSON entry in the compile cache
(``unified.cache.CompileCache``) under a key of the model's bytes, the input
shapes and dtypes, every candidate delegate's and framework's version, the CPU
model and core count, and the planning and gate options. A later session with
the same key compiles the chosen plan and measures nothing; ``force=True``
(``unified tune --force``) measures again. The budget and repeat counts are
not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import onnx

from unified.accuracy import accuracy_gate
from unified.cache import CompileCache, default_cache_dir
from unified.errors import CacheError, DelegateUnavailableError, InputError, TuningError, UnifiedError, UnsupportedError
from unified.graph import Graph, ModelLike, random_feed
from unified.host import cpu_model, physical_cores
from unified.pipeline import CompiledModel, compile_model, plan_model
from unified.plan import CandidateResult, Plan, Tuning
from unified.plugins import PluginRegistry, registry
from unified.tune_worker import BLOCK_SECONDS, LATE, MIN_ROUNDS, Compiler, node_assignment, time_apart, time_block

if TYPE_CHECKING:
    from unified.session import InferenceSession, SessionOptions

__all__ = ["tune", "tuning_key", "TUNING_SCHEMA_VERSION"]

#: 2: final round, fewer partitions win within SIMPLER_PLAN_MARGIN; 3: the final
#: round in child processes; 4: the first round in blocks like the children's,
#: at least MIN_ROUNDS rounds, final-round spread 25 %. A decision cached by
#: another version is re-measured.
TUNING_SCHEMA_VERSION = 4
REFERENCE = ("onnxruntime", {"optimization_level": "disable"})
BLOCK = 4  # consecutive timed runs of one candidate in a round (see _measure)
MIN_TIMED_SECONDS = 0.5  # fast models: time every candidate until the fastest ran this long (see _measure)
MAX_TIMED_RUNS = 2000  # ... but at most this many runs each
#: Compiling candidates stops when this fraction of the budget is left, so
#: that it is spent on timing (a compile in tune's child process is stopped
#: there; see _build_all). Measured in session 8: ExecuTorch's export alone
#: took 50 s of ResNet-50's 60 s and 73 s on PP-OCR rec, and with the budget
#: gone there was no final round, each candidate in a process of its own.
MEASURE_RESERVE = 0.25
#: When the budget runs out before the first round of timing has had
#: MIN_ROUNDS rounds, it goes on for at most this fraction of the budget more
#: (see _measure).
MEASURE_GRACE = 0.05
#: A plan with more partitions wins over one with fewer only when it is more
#: than this fraction faster (see _best): a cut between two runtimes costs
#: more in use than in tune's loop. Measured on silero VAD (op15): the
#: 2-partition tflite + onnxruntime plan timed 0.98x onnxruntime alone in
#: tune, and 1.1-2.4x it with each session in its own process
#: (benchmarks/auto_placement.py, docs/performance.md).
SIMPLER_PLAN_MARGIN = 0.05
#: Candidates within this fraction of the fastest are timed again, among
#: themselves only, before the choice (see _final_round). Measured on
#: nudenet: with every candidate in the round, tflite and onnxruntime timed
#: 22.6 ms each (IQR 9-10 ms); alone, tflite runs 18.4 ms and onnxruntime 22.4.
#: Was 0.15; on PP-OCR rec the first round (all candidates in one process)
#: timed tflite 19 % and onnxruntime 37 % over their times each in a process
#: of its own (36.6 vs 30.7 ms, 54.0 vs 39.4 ms; session 8), so a spread of
#: 15 % can leave the fastest out.
FINAL_ROUND_SPREAD = 0.25
#: In the final round (children), every contender runs until its timed runs
#: add up to this many seconds (and tuning_repeats runs, and MIN_ROUNDS
#: rounds), the deadline permitting. Measured on ResNet-50 (session 8): four
#: rounds of 20 runs each timed tflite / onnxruntime at 0.93, 1.06, 1.00 and
#: 1.07: two contenders within 5 % of each other need more runs than 20.
FINAL_ROUND_SECONDS = 3.0
#: The final round ends this fraction of the budget before the deadline: its
#: children are closed and the choice made after it. Measured on ResNet-50
#: (session 9, 3e4cb25): with the final round timed up to the deadline,
#: judged by each child's last block, tune took 60.03 s of its 60.
FINAL_ROUND_MARGIN = 0.01

log = logging.getLogger("unified")

@dataclass
class _Candidate:
    """One candidate: how to plan it, and what measuring it found."""

    name: str
    delegates: list | None
    placement: dict
    plan: Plan | None = None
    built: CompiledModel | None = None
    session: "InferenceSession | None" = None
    times: list = field(default_factory=list)
    error: float | None = None
    passed: bool = False
    note: str = ""
    duplicate_of: str | None = None  # an earlier candidate with the same plan (not built)
    moves: dict | None = None  # a per-partition variant: node -> delegate moved off the default plan

    def median(self) -> float | None:
        """Median run time in seconds (None before any timed run)."""
        return float(np.median(self.times)) if self.times else None


# --- the entry point ---------------------------------------------------------


def tune(
    model: ModelLike | Graph,
    options: "SessionOptions | None" = None,
    *,
    force: bool = False,
    reg: PluginRegistry | None = None,
) -> CompiledModel:
    """Choose, compile and return the fastest plan that passes the accuracy gate.

    See this module's docstring for what is searched, how it is measured and
    cached. ``InferenceSession(model, "auto", options)`` calls it.

    Args:
        model: path, bytes, ``onnx.ModelProto`` or a loaded ``Graph``.
        options: a ``SessionOptions``; the ``tuning_*`` fields, planning
            options (fallback, strict, placement, min_partition_nodes,
            free_dimensions) and cache options are used.
        force: measure even when the tuning cache holds a decision (the new
            decision replaces it).
        reg: the plugin registry (default: the process's plus ``options.plugins``).

    Returns:
        The chosen plan compiled; its ``plan.tuning`` is the candidate table.

    Raises:
        TuningError: a malformed tuning option, or the ``onnxruntime``
            delegate (the accuracy reference) is unavailable or cannot run
            the model.
        InputError: ``tuning_inputs`` names an unknown input, or an input
            cannot be drawn at random (pass it in ``tuning_inputs``).
        ModelError, DelegateUnavailableError: see ``InferenceSession``.
    """
    from unified.session import SessionOptions

    options = options or SessionOptions()
    reg = reg or registry().extended(options.plugins)
    start = time.perf_counter()
    graph = model if isinstance(model, Graph) else Graph(model, options.free_dimensions)
    names = _candidate_delegates(reg, options)
    gate, gate_text = accuracy_gate(options.tuning_tolerance)
    feed = _feed(graph, options)
    key = tuning_key(graph, feed, options, names, reg, gate_text)
    cache = CompileCache(options.cache_dir or default_cache_dir()) if options.use_cache else None
    if cache is not None and not force:
        cached = _from_cache(cache, key, graph, options, reg)
        if cached is not None:
            return cached
    budget = max(0.0, float(options.tuning_seconds))
    deadline = start + budget
    source = model if isinstance(model, (str, os.PathLike)) else graph  # what a final-round child loads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # candidates fall back by design; the table says what ran where
        winner, tuning = _search(source, graph, feed, options, reg, names, gate, gate_text, deadline, budget)
    tuning = replace(tuning, seconds=time.perf_counter() - start, key=key)
    if cache is not None:
        choice = {"name": winner.name, "delegates": winner.delegates, "placement": winner.placement}
        payload = {"schema": TUNING_SCHEMA_VERSION, "choice": choice, "tuning": _asdict(tuning)}
        try:
            cache.put(key, json.dumps(payload, default=str).encode(), {"kind": "tuning"})
        except CacheError as exc:  # the decision stands; only its reuse is lost
            log.warning("tuning decision not cached: %s", exc)
    built = winner.built
    return replace(built, plan=replace(built.plan, tuning=tuning))


def _search(source, graph, feed, options, reg, names, gate, gate_text, deadline, budget) -> tuple[_Candidate, Tuning]:
    """Build, measure and choose; returns the winner (compiled) and the table.

    ``deadline``: ``time.perf_counter()`` value the search ends by; ``budget``: the whole budget in seconds.
    """
    reference = _Candidate("reference", [REFERENCE], {})
    _build(reference, graph, replace(options, fallback=None, strict=False), reg)
    if reference.session is None:
        raise TuningError(
            f"delegates='auto' needs the onnxruntime delegate as its accuracy reference, and it could not take "
            f"this model: {reference.note}"
        )
    try:
        ref_out = _warm(reference, feed, options.tuning_warmup, None, gate)
    except TuningError as exc:
        drawn = [t.name for t in graph.input_infos() if t.name not in (options.tuning_inputs or {})]
        if not drawn:
            raise
        raise TuningError(
            f"{exc}\n(input(s) {drawn} were drawn at random, symbolic dims as 1: give real ones in tuning_inputs "
            "(unified tune --input NAME=FILE.npy), or fix dims with free_dimensions (--free-dim NAME=VALUE))"
        ) from None
    reference.note = "accuracy reference (ONNX Runtime, no graph optimizations); runs only if nothing passes"
    default_spec = None if options.tuning_delegates is None else list(names)
    first = _Candidate("default", default_spec, _user_placement(options, names))
    # the fallback alone second: every other plan leans on it, and it compiles fast
    order = sorted(names, key=lambda n: n != options.fallback)
    cands = [first] + [_Candidate(n, [n], _user_placement(options, [n])) for n in order]
    warm = lambda c: _warm(c, feed, options.tuning_warmup, ref_out, gate)  # noqa: E731
    # compiling stops early enough to leave MEASURE_RESERVE of the budget for timing
    compile_by = deadline - MEASURE_RESERVE * budget
    with Compiler(source, options, feed) as compiler:
        exhausted = _build_all(cands, graph, options, reg, compile_by, warm, always=first, compiler=compiler)
        if first.built is not None and not exhausted:
            variants = _variants(first, graph, options, reg, names, compile_by)
            exhausted = _build_all(variants, graph, options, reg, compile_by, warm, seen=cands, compiler=compiler)
            cands += [v for v in variants if v.duplicate_of is None]  # a duplicate variant says nothing new
    live = [c for c in cands if c.session is not None]
    grace = MEASURE_GRACE * budget
    cut = _measure(live, feed, options.tuning_repeats, deadline, grace=grace)
    exhausted = exhausted or cut
    best = _best(cands)
    if best is not None and not cut:
        combo, contenders = _combined(first, cands, graph, options, reg), _contenders(cands)
        exhausted = _final_round(contenders, combo, cands, source, graph, feed, options, reg, ref_out, gate,
                                 deadline - FINAL_ROUND_MARGIN * budget) or exhausted
        if combo is not None:
            cands.append(combo)
            contenders.append(combo)
        best = _best(contenders) or best  # times of one round only
    winner = best or reference
    for c in cands:
        if c.session is None and not c.note:
            c.note = "not measured: the tuning budget ran out"
        elif c.session is not None and not c.times and c.passed:
            c.note = c.note or "not timed: the tuning budget ran out"
    rows = tuple(_row(c, c is winner) for c in cands + [reference])
    tuning = Tuning(rows, winner.name, gate_text, float(options.tuning_seconds), 0.0, exhausted)
    return winner, tuning


# --- candidates ----------------------------------------------------------------


def _candidate_delegates(reg: PluginRegistry, options: "SessionOptions") -> list[str]:
    """The delegate names candidates are built from, in priority order."""
    if options.tuning_delegates is None:
        return list(reg.default_order())
    if isinstance(options.tuning_delegates, (str, bytes)):
        raise TuningError(f"tuning_delegates must be a list of delegate names, got {options.tuning_delegates!r}")
    names = list(options.tuning_delegates)
    for n in names:
        reg.get(n)  # an unknown name raises, listing the registered ones
    if not names:
        raise TuningError("tuning_delegates is empty; name at least one delegate (or None for every available one)")
    return names


def _user_placement(options: "SessionOptions", names: Sequence[str]) -> dict:
    """The user's placement entries whose delegate this candidate has (its list or the fallback)."""
    have = set(names) | ({options.fallback} if options.fallback and not options.strict else set())
    return {k: v for k, v in options.placement.items() if v in have}


def _plan_of(c: _Candidate, graph, options, reg):
    """Plan ``c`` (no compiling); None and a note when its delegates cannot take the model."""
    try:
        return plan_model(graph, c.delegates, replace(options, placement=c.placement), reg=reg, warn=False)
    except UnifiedError as exc:
        c.note = f"cannot plan: {_first_line(exc)}"
        return None


def _build(c: _Candidate, graph, options, reg, planned=None) -> None:
    """Plan (unless ``planned`` is given) and compile ``c`` and open its session; a failure becomes its note."""
    from unified.session import InferenceSession

    planned = planned or _plan_of(c, graph, options, reg)
    if planned is None:
        return
    c.plan = planned.plan
    opts = replace(options, placement=c.placement)
    try:
        c.built = compile_model(planned, c.delegates, opts, reg=reg)
    except UnifiedError as exc:
        c.note = f"compile failed: {_first_line(exc)}"
        return
    c.plan = c.built.plan
    c.session = InferenceSession._from_parts(graph, c.built.plan, c.built.partitions, replace(opts, plugins=()))


def _build_all(cands, graph, options, reg, deadline, warm, always=None, seen=(), compiler=None) -> bool:
    """Build and ``warm`` (warm-up runs and the gate) each candidate in order
    until the deadline (``always`` regardless).

    With a ``compiler`` (:class:`unified.tune_worker.Compiler`) that can, each
    candidate is compiled in its child first, which is stopped at the deadline
    (``always``: never), and this process builds it from the cache; otherwise
    it is compiled here, and a compile under way is not cut short. A
    candidate whose plan assigns every node as an earlier one's (or one of
    ``seen``) did is not built; its note names the earlier one. Returns True
    if the budget ran out.
    """
    known = {node_assignment(c.plan): c.name for c in seen if c.plan is not None}
    for c in cands:
        if c is not always and time.perf_counter() > deadline:
            return True
        planned = _plan_of(c, graph, options, reg)
        if planned is None:
            continue
        same = known.get(node_assignment(planned.plan))
        if same is not None:
            c.plan, c.duplicate_of, c.note = planned.plan, same, f"same plan as '{same}'"
            continue
        if compiler is not None:
            why = compiler.compile(c.delegates, c.placement, node_assignment(planned.plan),
                                   None if c is always else deadline)
            if why == LATE:
                c.plan, c.note = planned.plan, "not measured: the tuning budget ran out during its compile (stopped)"
                return True
            if why:
                log.debug("tune: %s compiled in this process: %s", c.name, why)
        _build(c, graph, options, reg, planned)
        if c.session is not None:
            warm(c)
        if c.plan is not None:
            known.setdefault(node_assignment(c.plan), c.name)
    return False


def _variants(default: _Candidate, graph, options, reg, names, deadline: float) -> list[_Candidate]:
    """The default plan with one partition moved to another delegate that claims all its nodes
    (largest partitions first; planning them stops at the deadline)."""
    others = list(names) + ([options.fallback] if options.fallback and options.fallback not in names else [])
    pinned = set(options.placement)
    out = []
    for p in sorted(default.plan.partitions, key=lambda p: -len(p.nodes)):
        for d in others:
            if d == p.delegate or time.perf_counter() > deadline:
                continue
            moved = {n: d for n, op in zip(p.nodes, p.op_types) if n not in pinned and op not in pinned}
            if not moved:
                continue
            c = _Candidate(f"default, {p.name}->{d}", default.delegates, {**default.placement, **moved})
            try:
                plan_model(graph, c.delegates, replace(options, placement=c.placement), reg=reg, warn=False)
            except (UnsupportedError, DelegateUnavailableError):
                continue  # d declines a node of p: not a candidate
            c.moves = moved
            out.append(c)
    return out


def _combined(default: _Candidate, cands, graph, options, reg) -> _Candidate | None:
    """All single-partition moves that beat the default plan, together (None if fewer than two)."""
    base = default.median()
    if base is None:
        return None
    best_per_partition: dict[str, _Candidate] = {}
    for c in cands:
        if c.moves is None or not c.passed or c.median() is None or c.median() >= base:
            continue
        part = c.name.split(", ")[1].split("->")[0]
        if part not in best_per_partition or c.median() < best_per_partition[part].median():
            best_per_partition[part] = c
    if len(best_per_partition) < 2:
        return None
    placement = dict(default.placement)
    for c in best_per_partition.values():
        placement.update(c.moves)
    moves = ", ".join(c.name.split(", ")[1] for c in best_per_partition.values())
    return _Candidate("combined", default.delegates, placement, note=f"default, {moves}")


def _contenders(cands) -> list[_Candidate]:
    """Timed candidates that passed the gate, within :data:`FINAL_ROUND_SPREAD` of the fastest."""
    timed = [c for c in cands if c.passed and c.times]
    fastest = min((c.median() for c in timed), default=0.0)
    return [c for c in timed if c.median() <= fastest * (1 + FINAL_ROUND_SPREAD)]


def _final_round(contenders, combo, seen, source, graph, feed, options, reg, ref_out, gate, deadline) -> bool:
    """Build ``combo`` if given (unless its plan is one of ``seen``), then time the
    contenders and it alternating among themselves only, their earlier times
    replaced: the choice compares times of one round (a round of many
    candidates disturbs each more than a round of a few).

    Each contender runs in a process of its own (:mod:`unified.tune_worker`;
    ``source`` is what a child loads): in this one every candidate's runtime
    is alive and slows the others. Where that cannot be done (that module
    says when), the round runs here. Returns True if the budget ran out."""
    warm = lambda c: _warm(c, feed, options.tuning_warmup, ref_out, gate)  # noqa: E731
    if combo is not None:
        if _build_all([combo], graph, options, reg, deadline, warm, seen=seen):
            return True
        if combo.session is not None:
            contenders = [*contenders, combo]
    if len(contenders) < 2:
        return False
    earlier = {id(c): c.times for c in contenders}
    specs = [(c.delegates, c.placement, node_assignment(c.plan)) for c in contenders]
    apart = time_apart(source, specs, feed, options, block_runs=BLOCK, repeats=options.tuning_repeats,
                       min_seconds=FINAL_ROUND_SECONDS, deadline=deadline)
    if apart.times is None and apart.exhausted:
        return True  # the budget ran out while the children loaded: the earlier times stand
    if apart.times is not None:
        for c, times in zip(contenders, apart.times):
            c.times = times
        where, exhausted = "in a process of its own", apart.exhausted
    else:
        log.debug("tune: final round in this process: %s", apart.reason)
        for c in contenders:
            c.times = []
        exhausted = _measure(contenders, feed, options.tuning_repeats, deadline, min_seconds=FINAL_ROUND_SECONDS)
        where = f"in tune's process ({apart.reason})"
    for c in contenders:
        if not c.times:
            c.times = earlier[id(c)]  # the budget ran out first: its earlier times stand
        else:
            c.note = (c.note + "; " if c.note else "") + f"final round {where}"
    return exhausted


def _best(cands) -> _Candidate | None:
    """The fastest candidate that passed the gate, except that one with fewer
    partitions within :data:`SIMPLER_PLAN_MARGIN` of it wins (fewest
    partitions first, then the faster); None when nothing passed and was timed."""
    timed = [c for c in cands if c.passed and c.times]
    if not timed:
        return None
    fastest = min(c.median() for c in timed)
    near = [c for c in timed if c.median() <= fastest * (1 + SIMPLER_PLAN_MARGIN)]
    return min(near, key=lambda c: (len(c.plan.partitions), c.median()))


# --- measuring -------------------------------------------------------------------


def _warm(c: _Candidate, feed, warmup: int, reference, gate) -> dict | None:
    """Untimed runs (at least one); gate the first outputs against ``reference`` (None: this is it)."""
    try:
        first = c.session.run(None, feed)
        for _ in range(max(0, warmup - 1)):
            c.session.run(None, feed)
    except UnifiedError as exc:
        if reference is None and isinstance(exc, InputError):
            raise  # a tuning input of the wrong dtype or shape: the message names it
        if reference is None:
            raise TuningError(f"the accuracy reference (onnxruntime alone) failed to run the model: {exc}") from None
        c.note, c.session = f"run failed: {_first_line(exc)}", None
        return None
    outputs = dict(zip((o.name for o in c.session.get_outputs()), first))
    if reference is None:
        c.error, c.passed = 0.0, True
        return outputs
    try:
        c.error, c.passed = gate(outputs, reference)
    except UnifiedError:
        raise
    except Exception as exc:
        raise TuningError(f"the tuning_tolerance callable raised {type(exc).__name__}: {exc}") from None
    if not c.passed:
        c.note = "fails the accuracy gate: never chosen" + (f"; {c.note}" if c.note else "")
    return outputs


def _measure(cands: Sequence[_Candidate], feed, repeats: int, deadline: float,
             min_seconds: float | None = None, grace: float = 0.0) -> bool:
    """Timed runs in rounds alternating between ``cands``, one block per
    candidate and round, the order rotating from round to round, until every
    candidate has ``repeats`` timed runs and :data:`~unified.tune_worker.MIN_ROUNDS`
    rounds have run, or the deadline.

    A block is what a final-round child times (:func:`unified.tune_worker.time_block`):
    at least :data:`BLOCK` runs and :data:`~unified.tune_worker.BLOCK_SECONDS`,
    plus a first run that is not counted. Blocks, not single runs: a
    runtime's idle worker threads keep spinning (and its data stays in
    cache) for a while after its run, so a run that directly follows another
    runtime's is slowed by it. Measured on ``ppocr_det``: tflite alone 9.3 ms
    median, right after an executorch run 12.9-16 ms, in blocks of 4
    alternating with executorch and onnxruntime 8.7 ms (onnxruntime alone
    11.7, in blocks 11.8). A block's median is what a session running that
    plan alone sees; alternating the blocks spreads slow drifts of the
    machine's load over every candidate.

    Fast models get more runs: after the first round, every candidate runs
    until the fastest one has run ``min_seconds`` (default
    :data:`MIN_TIMED_SECONDS`; at most :data:`MAX_TIMED_RUNS` runs). Twenty runs
    of a 0.4 ms model (silero VAD) are noise: with them ``tune`` once chose a
    plan 1.3x slower than the fastest.

    The first round runs whatever the deadline (every candidate is compiled
    and warm: a block is cheap next to that, and it can then be chosen). When
    the deadline comes before ``MIN_ROUNDS`` rounds, the rounds go on until
    then for at most ``grace`` seconds past it: one or two blocks per
    candidate are a draw on a noisy machine (PP-OCR rec, session 7: with the
    budget spent on compiling, tflite timed 48.6 ms in tune and 32 ms alone,
    and onnxruntime was chosen at 1.33x the fastest). Run times (seconds) are
    appended to each candidate's ``times``. Returns True if the deadline came
    before the rounds were done.
    """
    min_seconds = MIN_TIMED_SECONDS if min_seconds is None else min_seconds
    target, rounds = max(1, repeats), 0
    while True:
        live = [c for c in cands if c.session is not None]
        now = time.perf_counter()
        if not live or (rounds >= MIN_ROUNDS and all(len(c.times) >= target for c in live)):
            return now > deadline
        if rounds and now > deadline and (rounds >= MIN_ROUNDS or now > deadline + grace):
            return True
        shift = rounds % len(live)
        for c in live[shift:] + live[:shift]:
            try:
                c.times += time_block(partial(c.session.run, None, feed), BLOCK, BLOCK_SECONDS)
            except UnifiedError as exc:
                c.note, c.session, c.passed = f"run failed: {_first_line(exc)}", None, False
        rounds += 1
        if rounds == 1 and min_seconds > 0:
            fastest = min((min(c.times) for c in cands if c.times), default=0.0)
            if fastest > 0:
                target = max(target, min(MAX_TIMED_RUNS, math.ceil(min_seconds / fastest)))


def _row(c: _Candidate, chosen: bool) -> CandidateResult:
    ms = np.asarray(c.times) * 1e3
    spread = float(np.percentile(ms, 75) - np.percentile(ms, 25)) if len(ms) else None
    return CandidateResult(
        name=c.name,
        summary=_summary(c.plan) if c.plan is not None else "-",
        median_ms=float(np.median(ms)) if len(ms) else None,
        spread_ms=spread,
        runs=len(ms),
        error=c.error,
        passed=c.passed,
        chosen=chosen,
        note=c.note,
    )


def _summary(plan: Plan) -> str:
    counts = ", ".join(f"{d} {n}" for d, n in plan.node_counts().items())
    return f"{counts} ({len(plan.partitions)} partition{'s' if len(plan.partitions) != 1 else ''})"


# --- inputs, the key and the cache ---------------------------------------------------


def _feed(graph: Graph, options: "SessionOptions") -> dict[str, Any]:
    """``tuning_inputs``, with every input not given drawn at random (seed 0)."""
    given = dict(options.tuning_inputs or {})
    infos = graph.input_infos()
    known = {t.name for t in infos}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InputError(f"tuning_inputs names unknown input(s) {unknown}; the model's inputs are: {sorted(known)}")
    feed = random_feed([t for t in infos if t.name not in given], seed=0, dims=options.free_dimensions)
    feed.update({k: np.asarray(v) for k, v in given.items()})
    return {t.name: feed[t.name] for t in infos}


def tuning_key(graph: Graph, feed: Mapping[str, Any], options: "SessionOptions", names: Sequence[str],
               reg: PluginRegistry, gate_text: str) -> str:
    """The SHA-256 hex key of one tuning decision.

    It covers the model (its loaded bytes), the input shapes and dtypes, the
    candidate delegates with their versions (and the reference's), the
    ``unified``, onnx and numpy versions, the CPU model and logical core
    count, the planning options (fallback, strict, placement,
    min_partition_nodes, free_dimensions) and the accuracy gate.
    """
    import unified

    delegates = sorted(set(names) | {REFERENCE[0]} | ({options.fallback} if options.fallback else set()))
    versions = {}
    for n in delegates:
        try:
            versions[n] = reg.availability(n).version
        except KeyError:
            versions[n] = None
    meta = {
        "schema": TUNING_SCHEMA_VERSION,
        "inputs": {k: [str(v.dtype), list(v.shape)] for k, v in feed.items()},
        "candidates": list(names),
        "versions": versions,
        "frameworks": {"unified": unified.__version__, "onnx": onnx.__version__, "numpy": np.__version__},
        "cpu": [cpu_model(), os.cpu_count(), physical_cores()],
        "options": {
            "fallback": options.fallback, "strict": options.strict, "placement": dict(options.placement),
            "min_partition_nodes": options.min_partition_nodes, "free_dimensions": dict(options.free_dimensions),
            "gate": gate_text,
        },
    }
    h = hashlib.sha256(b"unified-tuning\0")
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    h.update(hashlib.sha256(graph.model.SerializeToString(deterministic=True)).digest())
    return h.hexdigest()


def _from_cache(cache: CompileCache, key: str, graph, options, reg) -> CompiledModel | None:
    """The cached decision compiled, or None (no entry, or it no longer plans or compiles)."""
    blob = cache.get(key)
    if blob is None:
        return None
    try:
        payload = json.loads(blob)
        choice = payload["choice"]
        tuning = Tuning.from_dict(payload["tuning"])
        if payload.get("schema") != TUNING_SCHEMA_VERSION:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    delegates = None if choice["delegates"] is None else [
        d if isinstance(d, str) else (d[0], dict(d[1])) for d in choice["delegates"]
    ]
    opts = replace(options, placement=dict(choice["placement"]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = compile_model(graph, delegates, opts, reg=reg)
    except UnifiedError as exc:
        log.info("cached tuning decision %s no longer compiles (%s); tuning again", key[:12], _first_line(exc))
        return None
    log.debug("tuning decision %s from the cache: %s", key[:12], choice["name"])
    return replace(built, plan=replace(built.plan, tuning=replace(tuning, from_cache=True)))


def _asdict(tuning: Tuning) -> dict:
    from dataclasses import asdict

    return asdict(tuning)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
