"""The ``baton`` command line: one module per concern, one group per connector."""

from __future__ import annotations

from baton.cli import generate, hubspot, ops, salesforce, slack  # noqa: F401  (each adds its commands to the group)
from baton.cli.common import cli

__all__ = ["cli", "main"]


def main() -> None:
    # Settings errors can happen before any command body runs (e.g. in load_settings).
    cli.main(prog_name="baton")
