"""The shape of a CLI subcommand a plugin contributes (``unified_cli_commands``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

__all__ = ["Command"]


@dataclass(frozen=True)
class Command:
    """One ``unified <name>`` subcommand.

    Attributes:
        name: the subcommand word, e.g. ``"simulate"``.
        help: one line for ``unified --help``.
        add_arguments: fills the subcommand's ``argparse`` parser.
        run: executes it with the parsed arguments; returns the exit code.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
