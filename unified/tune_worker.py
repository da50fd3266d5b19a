"""``tune``'s child processes: one compiles the candidates (:class:`Compiler`),
and the final round times each contender in a process of its own
(:func:`time_apart`). Both children are ``python -m unified.tune_worker``.

Why the final round runs apart: inside one process every candidate's runtime
is alive at once, and each slows the others (threads of several runtimes,
shared caches). Measured on silero VAD op15 (docs/performance.md, session 6):
onnxruntime alone ran 0.229 ms per call in ``tune``'s process with the tflite
and executorch sessions alive, 0.195-0.211 ms in a process of its own;
``tune`` chose a 2-partition tflite + onnxruntime plan that timed 8 % faster
in its process and runs 1.2x slower than onnxruntime alone, each in its own
process. A user's session lives in the user's process, without the other
candidates.

Each contender is rebuilt in a child process from the compile cache, which has
just been filled (so a child loads artifacts, it does not compile), warmed up,
and checked to plan every node exactly as the parent's candidate did. The
parent then asks the children in turn, round after round, for a block of
consecutive runs; each child times its own runs. Only one child runs at a
time; the others wait on their pipe. A block is at least ``block_runs`` runs
and :data:`BLOCK_SECONDS`, and its first run is not counted (it wakes that
process's threads, which a session called in a loop does not pay), as in
``benchmarks/auto_placement.py``.

A child is a fresh interpreter (``subprocess``, not ``multiprocessing``), so
it never re-imports the user's ``__main__``; its stdout and stderr go to
``os.devnull`` (frameworks' chatter stays hidden) and it reports through a
socket pair. Whatever keeps a child from starting or building its contender
(no cache, plugin objects that exist only in the parent, a model that cannot
be written out, a crash) is returned as a reason, and ``tune`` times the
round in its own process instead.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, Callable, Mapping, Sequence

__all__ = ["ApartRound", "Compiler", "LATE", "time_apart", "time_block", "node_assignment", "BLOCK_SECONDS",
           "MIN_ROUNDS"]

#: A block lasts at least this long (seconds), so that a sub-millisecond
#: model's block is not all wake-up; the figure of benchmarks/auto_placement.py.
BLOCK_SECONDS = 0.02
MIN_ROUNDS = 4  # rounds at least, so that alternating spreads the machine's drifts over every contender
_CLOSE_SECONDS = 5.0
#: What starting, feeding or hearing from a child can raise: a reason to work in this process instead.
_CHILD_ERRORS = (OSError, EOFError, ValueError, subprocess.SubprocessError, pickle.PicklingError, TypeError,
                 AttributeError)


def time_block(run: Callable[[], Any], runs: int, seconds: float) -> list[float]:
    """One block: consecutive calls of ``run()``, at least ``runs`` + 1 of them
    and ``seconds`` (wall time) in all; returns each call's time in seconds,
    the first call's left out (it wakes the runtime's threads, which a session
    called in a loop does not pay). Exceptions from ``run`` propagate."""
    times, start = [], time.perf_counter()
    while len(times) < runs + 1 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times[1:]


def node_assignment(plan) -> tuple:
    """``(node, delegate, backend)`` for every node of ``plan`` (a ``Plan``), in partition order."""
    return tuple((n, p.delegate, p.backend) for p in plan.partitions for n in p.nodes)


@dataclass
class ApartRound:
    """What :func:`time_apart` found.

    Attributes:
        times: per contender (in the order given), its run times in seconds;
            None when the round could not run apart (see ``reason``).
        reason: why the round did not run apart ("" when it did).
        exhausted: the deadline cut the round short (or came before every
            child was ready: then ``times`` is None).
    """

    times: list[list[float]] | None
    reason: str = ""
    exhausted: bool = False


def time_apart(
    model: Any,
    specs: Sequence[tuple[list | None, Mapping[str, str], tuple]],
    feed: Mapping[str, Any],
    options: Any,
    *,
    block_runs: int,
    repeats: int,
    min_seconds: float,
    deadline: float,
) -> ApartRound:
    """Time each contender in a child process of its own, alternating blocks between them.

    Args:
        model: the model as given to ``tune`` (a path is handed on as is;
            anything else is the loaded ``Graph``, whose model is written to a
            temporary file).
        specs: per contender ``(delegates, placement, assignment)``: the
            priority list and placement it was planned with, and its plan's
            ``(node, delegate, backend)`` for every node, which the child's plan
            must match.
        feed: input name -> array, the inputs every run uses.
        options: the ``SessionOptions`` tune runs with (cache, planning and
            warm-up options are used; the cache must be on).
        block_runs: timed runs per block at least (besides the uncounted first).
        repeats: timed runs per contender at least.
        min_seconds: every contender's timed runs add up to this at least.
        deadline: ``time.perf_counter()`` value; no block starts after it.

    Returns:
        An :class:`ApartRound`.
    """
    reason = _why_not(options)
    if reason:
        return ApartRound(None, reason)
    with tempfile.TemporaryDirectory(prefix="unified-tune-") as tmp:
        try:
            path = _model_path(model, tmp)
        except (ValueError, OSError) as exc:
            return ApartRound(None, f"the model could not be written for the child processes ({exc})")
        child_options = _child_options(options)
        children = []
        try:
            for _ in specs:  # every child starts importing at once; then each gets its request
                children.append(_Child())
            for child, (delegates, placement, _) in zip(children, specs):
                child.send_request(path, delegates, replace(child_options, placement=dict(placement)), feed)
            for child, (_, _, assignment) in zip(children, specs):
                failure = child.ready(deadline, assignment)
                if failure is not None:
                    return ApartRound(None, failure, exhausted=failure == LATE)
            return _rounds(children, block_runs, repeats, min_seconds, deadline)
        except _CHILD_ERRORS as exc:  # e.g. no pass_fds on this platform, a child that died
            return ApartRound(None, f"a child process failed ({type(exc).__name__}: {exc})")
        finally:
            _close_all(children)


LATE = "the tuning budget ran out while the child processes loaded"
_CANNOT_BUILD = "a child process could not build its contender"
_OTHER_PLAN = "a child process planned its contender differently from this process"


class Compiler:
    """Compiles ``tune``'s candidates in a child process, into the compile cache.

    ``tune``'s process then builds each candidate from the cache (loading,
    not converting). Two reasons:

    * A compile can be stopped at the deadline: the child is killed. A
      converter running in ``tune``'s own process cannot be cut short, and
      one can take most of the budget: ExecuTorch's export of ResNet-50 took
      50 s of the 60 s, of PP-OCR rec 73 s (session 8), which left no time
      to time the candidates each in a process of its own.
    * ``tune``'s process never runs a converter. After ExecuTorch's export
      had run in a process, ONNX Runtime ran slower there: light_squeezenet
      6.9 ms before and 8.5 ms after in one process; in tune's first round
      ResNet-50 81.7 ms against 62.9 ms in a process of its own, PP-OCR rec
      54.0 against 39.4 ms. With the compiles in the child, PP-OCR rec's
      first round timed it at 36.8 ms (single measurements, session 8; the
      cause was not found).

    One child serves every compile in turn (torch and ``executorch.exir`` are
    imported once); it builds the candidate's session with the cache on and
    runs it once on the feed (so that shape specializations, compiled at the
    first run, are in the cache too), and reports the plan's node
    assignment. A compile that fails there, or plans differently, is
    reported as a reason: ``tune`` then compiles that candidate in its own
    process, which gives the usual note. Without the cache, or with plugins
    given as objects, there is no child (:attr:`reason` says why).

    Use as a context manager; :meth:`close` kills a child still compiling.
    """

    def __init__(self, model: Any, options: Any, feed: Mapping[str, Any]):
        self.reason = _why_not(options)
        self._model, self._feed, self._options = model, dict(feed), _child_options(options)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._path: str | None = None
        self._child: _Child | None = None

    def compile(self, delegates, placement: Mapping[str, str], assignment: tuple, deadline: float | None) -> str | None:
        """Compile one candidate in the child; None once the cache holds it.

        Args:
            delegates, placement: what the candidate is planned with.
            assignment: its plan's :func:`node_assignment`, which the child's must match.
            deadline: ``time.perf_counter()`` value at which the child is
                killed if still compiling (None: no limit).

        Returns:
            None, or why not: :data:`LATE` when the deadline came first (the
            compile was stopped), else a reason to compile in this process.
        """
        if self.reason:
            return self.reason
        try:
            if self._path is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="unified-tune-")
                self._path = _model_path(self._model, self._tmp.name)
            if self._child is None:
                self._child = _Child()
            self._child.send_request(self._path, delegates, replace(self._options, placement=dict(placement)),
                                     self._feed)
            failure = self._child.ready(deadline, assignment)
        except _CHILD_ERRORS as exc:
            failure = f"a child process failed ({type(exc).__name__}: {exc})"
        if failure is not None and not self._child_alive(failure):
            _close_all([self._child])
            self._child = None
        return failure

    def _child_alive(self, failure: str) -> bool:
        """After a failure, the child still serves if it replied (a compile error, another plan)."""
        return self._child is not None and (failure.startswith(_CANNOT_BUILD) or failure == _OTHER_PLAN)

    def close(self) -> None:
        """Stop the child (killed if still compiling) and remove the model file written for it."""
        if self._child is not None:
            _close_all([self._child])
            self._child = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Compiler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _child_options(options):
    """What a child builds with: the parent's options less what exists only in the parent."""
    return replace(options, plugins=(), progress=None, tuning_inputs=None, tuning_tolerance=None,
                   enable_profiling=False)


def _why_not(options) -> str:
    if not options.use_cache:
        return "the compile cache is off, so each child would compile again"
    if options.plugins:
        return "plugins given as objects exist only in this process"
    return ""


def _model_path(model: Any, tmp: str) -> str:
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    path = os.path.join(tmp, "model.onnx")
    with open(path, "wb") as f:
        f.write(model.model.SerializeToString())
    return path


def _rounds(children, block_runs: int, repeats: int, min_seconds: float, deadline: float) -> ApartRound:
    """Rounds of one block per child until MIN_ROUNDS rounds, ``repeats`` runs
    and ``min_seconds`` per child; after the first round, no block starts that
    would end past the deadline (judged by that child's last block)."""
    times: list[list[float]] = [[] for _ in children]
    last = [0.0] * len(children)  # wall seconds of each child's last block
    rounds = 0
    while True:
        shift = rounds % len(children)  # each round starts with the next child: no fixed order
        for i in list(range(shift, len(children))) + list(range(shift)):
            start = time.perf_counter()
            if rounds and start + last[i] > deadline:
                return ApartRound(times, exhausted=True)
            times[i] += children[i].block(block_runs, BLOCK_SECONDS)
            last[i] = time.perf_counter() - start
        rounds += 1
        if rounds >= MIN_ROUNDS and min(len(t) for t in times) >= repeats and min(map(sum, times)) >= min_seconds:
            return ApartRound(times)


class _Child:
    """The parent's handle on one child process."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "unified.tune_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.serving = False  # built and warm: it stops when told to

    def send_request(self, model_path: str, delegates, options, feed: Mapping[str, Any]) -> None:
        self.serving = False  # busy building until it replies: closing now kills it
        self.conn.send({"model": model_path, "delegates": delegates, "options": options, "feed": dict(feed)})

    def ready(self, deadline: float | None, assignment: tuple) -> str | None:
        """None once the child has built a plan matching ``assignment``, else why not (None: no deadline)."""
        if not self.conn.poll(None if deadline is None else max(0.0, deadline - time.perf_counter())):
            return LATE
        status, info = self.conn.recv()
        if status != "ready":
            return f"{_CANNOT_BUILD} ({info})"
        if tuple(map(tuple, info["assignment"])) != tuple(assignment):
            return _OTHER_PLAN
        self.serving = True
        return None

    def block(self, runs: int, seconds: float) -> list[float]:
        self.conn.send((runs, seconds))
        return self.conn.recv()

    def tell_to_stop(self) -> None:
        """Ask a serving child to exit; kill any other (it is busy building)."""
        try:
            if self.serving:
                self.conn.send(None)
            self.conn.close()
        except OSError:
            pass
        if not self.serving:
            self.proc.kill()


def _close_all(children: Sequence[_Child]) -> None:
    """Stop every child: all are told at once, then each is waited for
    (killed if not gone within :data:`_CLOSE_SECONDS` of the telling)."""
    for child in children:
        child.tell_to_stop()
    until = time.perf_counter() + _CLOSE_SECONDS
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, until - time.perf_counter()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()


# --- the child ------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    """Until told to stop: on a request (a dict), build that contender, warm
    it up and report its plan (or the error); on ``(runs, seconds)``, time a
    block of the last one built."""
    session = feed = None
    while (ask := conn.recv()) is not None:
        if isinstance(ask, dict):
            session = None  # the previous contender's memory goes before the next is built
            try:
                from unified.session import InferenceSession

                opts, feed = ask["options"], ask["feed"]
                session = InferenceSession(ask["model"], ask["delegates"], opts)
                for _ in range(max(1, opts.tuning_warmup)):
                    session.run(None, feed)
            except Exception as exc:  # reported to the parent, which builds or times it itself
                session, text = None, str(exc).strip().splitlines()
                conn.send(("error", f"{type(exc).__name__}: {text[0][:200] if text else ''}"))
                continue
            conn.send(("ready", {"assignment": node_assignment(session.plan)}))
        else:
            runs, seconds = ask
            conn.send(time_block(lambda: session.run(None, feed), runs, seconds))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of a child: ``python -m unified.tune_worker FD`` (FD: its end of the socket pair)."""
    argv = sys.argv[1:] if argv is None else argv
    warnings.simplefilter("ignore")
    conn = Connection(int(argv[0]))
    try:
        _serve(conn)
    except (EOFError, OSError):  # the parent went away
        return 1
    return 0


if __name__ == "__main__":
    # no interpreter teardown (torch's and the runtimes' exit handlers take a
    # second or more): the parent waits for this exit, on tune's budget
    os._exit(main())
