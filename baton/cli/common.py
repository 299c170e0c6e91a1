"""What every ``baton`` command shares: the root group, the consoles, and the rule that every
failure Baton expects (bad settings, bad policy, missing model, unknown kind, ...) ends in one line
on stderr and a non-zero exit; tracebacks are for bugs only (written to a crash log)."""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from baton.wiring import App, build_app
from core.errors import BatonError

F = TypeVar("F", bound=Callable[..., Any])

# Piped output (files, CI logs, tests) gets wide tables instead of Rich's 80-column default.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def handle_errors(fn: F) -> F:
    """Turn expected failures into one line and exit code 1."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BatonError as exc:
            click.echo(f"error: {exc}", err=True)  # one line, never wrapped
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug: still one line for the user, the details in the log
            log_path = _crash_log(exc)
            click.echo(f"error: internal error ({type(exc).__name__}); details in {log_path}; "
                       "please report it", err=True)
            sys.exit(2)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def _crash_log(exc: BaseException) -> str:
    """Write the traceback of an unexpected error to a file the user can attach to a report."""
    path = Path(tempfile.gettempdir()) / f"baton-crash-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    try:
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    except OSError:
        return "(no log: the temp directory is not writable)"
    return str(path)


def app() -> App:
    """The engine's app, built from settings (tests replace it)."""
    return build_app()


@click.group()
@click.version_option(package_name="baton")
def cli() -> None:
    """Baton: personalized marketing copy from a local or cloud model, chosen by policy."""


