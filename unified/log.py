"""One logger for ``unified``'s own lines, and the switch that lets the frameworks speak.

The library logs through ``logging.getLogger("unified")`` (and children) and
prints nothing itself (STYLE.md 17). Its progress lines ("compiling partition
2/5 ...") are INFO records; the command line shows them, a Python program sees
them only when it configures logging.

The frameworks underneath (torch, ExecuTorch, XNNPACK, TF Lite, coremltools)
are silenced by their delegates at their own switches unless
:func:`frameworks_verbose` is true: the ``unified`` logger is enabled for
DEBUG, e.g. ``unified -v ...``, ``UNIFIED_LOG_LEVEL=DEBUG`` or
``logging.getLogger("unified").setLevel(logging.DEBUG)``.
"""

from __future__ import annotations

import logging
import os
import sys
import time

__all__ = [
    "logger", "frameworks_verbose", "quiet_framework_loggers", "configure_cli_logging", "apply_env_level", "ENV_LEVEL",
]

ENV_LEVEL = "UNIFIED_LOG_LEVEL"
"""Environment variable: a ``logging`` level name (``DEBUG``, ``INFO``, ...) for the ``unified`` logger."""

logger = logging.getLogger("unified")


def apply_env_level() -> None:
    """Set the ``unified`` logger's level from ``UNIFIED_LOG_LEVEL`` (if set and valid)."""
    name = os.environ.get(ENV_LEVEL, "").strip().upper()
    if name and isinstance(logging.getLevelName(name), int):
        logger.setLevel(name)


def frameworks_verbose() -> bool:
    """Whether delegates should leave their frameworks' own logging on (``unified`` at DEBUG)."""
    return logger.isEnabledFor(logging.DEBUG)


def quiet_framework_loggers(names: tuple[str, ...], env: dict[str, str] | None = None) -> None:
    """Set the frameworks' own loggers to ERROR, unless :func:`frameworks_verbose`.

    Args:
        names: logger names, e.g. ``("torch", "torchao")``; a logger the
            application already gave a level is left alone.
        env: environment defaults to set (if unset) before the framework is
            imported, e.g. ``{"TORCH_CPP_LOG_LEVEL": "ERROR"}``.
    """
    if frameworks_verbose():
        return
    for key, value in (env or {}).items():
        os.environ.setdefault(key, value)
    for name in names:
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.ERROR)


class _Elapsed(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()

    def format(self, record: logging.LogRecord) -> str:
        prefix = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"[{time.perf_counter() - self.start:7.2f}s] {prefix}{record.getMessage()}"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (test capture replaces it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_cli_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Stage lines on stderr for the command line.

    Args:
        verbose: 0 shows INFO (unified's progress), 1 or more shows DEBUG
            and lets the frameworks speak.
        quiet: warnings and errors only (e.g. ``plan --json``).

    ``UNIFIED_LOG_LEVEL`` wins over both when set.
    """
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    logger.setLevel(level)
    apply_env_level()
    for h in list(logger.handlers):
        if getattr(h, "_unified_cli", False):
            logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(_Elapsed())
    handler._unified_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.propagate = False
