"""Generating copy and what it costs: ``generate``, ``route explain``, ``models``, ``roi``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from baton.cli import common
from baton.cli.common import cli, err, handle_errors, out
from baton.files import load_contact, load_contacts_csv
from baton.wiring import App
from core.engine.ledger import Receipt, month_start, price_of
from core.engine.routing import Step, available
from core.errors import BatonError, ConsentError, InputError
from core.policy import ModelConfig, Policy, Price
from core.settings import load_settings
from core.store import open_store
from core.tasks.kinds import Task

DEFAULT_BRIEF = "Recommend the Rain Cover, which keeps a pack dry in any weather."
# The sample brief in each language (a brief names what it is about: the guards hold copy to it).
DEFAULT_BRIEFS = {"en": DEFAULT_BRIEF,
                  "ja": "レインカバーをおすすめする。どんな天気でもバックパックを濡らさない。"}


# -- generate --------------------------------------------------------------------------------


def _receipt_line(r: Receipt) -> str:
    egress = f"egress: {', '.join(r.egress_entities) or 'masked, no entities'}" if r.egress \
        else "no data left the machine"
    return (f"receipt {r.id[:12]} · {r.role}/{r.model} · {r.prompt_tokens}+{r.completion_tokens} "
            f"tokens ({r.cached_tokens} cached) · {r.latency_ms:.0f} ms · ${r.cost_usd:.6f} "
            f"(cloud baseline ${r.baseline_cost_usd:.6f}) · {egress}")


@cli.command()
@click.argument("kind", default="email")
@click.option("--contact", "contact_file", type=click.Path(path_type=Path),
              help="JSON file with one contact (default: a bundled sample contact).")
@click.option("--contacts", "contacts_file", type=click.Path(path_type=Path),
              help="CSV file with one contact per row: bulk mode, needs --out.")
@click.option("--out", "out_file", type=click.Path(path_type=Path),
              help="JSONL file for bulk results (one line per contact).")
@click.option("--brief", default=None, help="What the copy is for (default: recommend the "
              "Rain Cover, in the contact's language).")
@click.option("--tier", type=click.Choice(["routine", "critical"]), default="routine",
              show_default=True)
@click.option("--language", default="en", show_default=True, help="en or ja.")
@click.option("--tenant", default="default", show_default=True)
@handle_errors
def generate(kind: str, contact_file: Path | None, contacts_file: Path | None,
             out_file: Path | None, brief: str | None, tier: str, language: str,
             tenant: str) -> None:
    """Generate KIND (email, text) for one contact, or for a CSV of contacts with --out."""
    brief = DEFAULT_BRIEFS.get(language, DEFAULT_BRIEF) if brief is None else brief
    if contacts_file is not None and out_file is None:
        raise InputError("--contacts needs --out FILE.jsonl for the results")
    if contacts_file is not None and contact_file is not None:
        raise InputError("use either --contact or --contacts, not both")
    app = common.app()
    try:
        app.engine.kinds.get(kind)
        if contacts_file is None:
            contact = load_contact(contact_file, language)
            task = Task(kind=kind, context=contact, brief=brief, tenant=tenant,
                        tier=tier, language=language)  # type: ignore[arg-type]
            result = app.engine.run(task)
            out.print_json(json.dumps(result.output, ensure_ascii=False))
            for receipt in result.receipts:
                err.print(_receipt_line(receipt), highlight=False, markup=False)
            return
        assert out_file is not None
        contacts = load_contacts_csv(contacts_file)
        err.print(contacts.describe(), highlight=False, markup=False)
        _bulk(app, kind, contacts.rows, out_file, brief, tier, language, tenant)
    finally:
        app.close()


def _bulk(app: App, kind: str, contacts: list[dict[str, str]], out_file: Path, brief: str,
          tier: str, language: str, tenant: str) -> None:
    tasks = [Task(kind=kind, context=c, brief=brief, tenant=tenant, tier=tier,  # type: ignore[arg-type]
                  language=language) for c in contacts]
    try:
        fh = out_file.open("w", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{out_file}: cannot write results ({exc.strerror})") from None
    failed = skipped = 0
    with fh, Progress(TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=err) as progress:
        bar = progress.add_task("generate", total=len(tasks))

        def done(i: int, outcome: Any) -> None:
            progress.advance(bar)

        outcomes = app.engine.run_many(tasks, on_done=done)
        for i, (task, outcome) in enumerate(zip(tasks, outcomes, strict=True)):
            line: dict[str, Any] = {"row": i + 1, "task_id": task.id}
            if isinstance(outcome, ConsentError):
                skipped += 1
                line["skipped"] = str(outcome)
            elif isinstance(outcome, BatonError):
                failed += 1
                line["error"] = str(outcome)
            else:
                line["output"] = outcome.output
                line["receipt_id"] = outcome.receipt.id
                line["route"] = outcome.decision.action
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    err.print(f"{len(tasks) - failed - skipped} of {len(tasks)} written to {out_file}"
              + (f"; {skipped} opted out of marketing email (see 'skipped')" if skipped else "")
              + (f"; {failed} failed (see their 'error')" if failed else ""), highlight=False)
    if failed and failed + skipped == len(tasks):
        sys.exit(1)


# -- route -----------------------------------------------------------------------------------


@cli.group()
def route() -> None:
    """Inspect routing decisions."""


@route.command("explain")
@click.argument("kind", default="email")
@click.option("--contact", "contact_file", type=click.Path(path_type=Path))
@click.option("--tier", type=click.Choice(["routine", "critical"]), default="routine",
              show_default=True)
@click.option("--language", default="en", show_default=True)
@click.option("--tenant", default="default", show_default=True)
@click.option("--brief", default=DEFAULT_BRIEF)
@handle_errors
def route_explain(kind: str, contact_file: Path | None, tier: str, language: str, tenant: str,
                  brief: str) -> None:
    """Show which model would run a task, what it would see, its fallbacks, and why."""
    app = common.app()
    try:
        task = Task(kind=kind, context=load_contact(contact_file, language), brief=brief,
                    tenant=tenant, tier=tier, language=language)  # type: ignore[arg-type]
        prep = app.engine.prepare(task)
        d = prep.decision
        out.print(f"[bold]action:[/] {d.action}   [bold]rule:[/] {d.rule or '(default)'}   "
                  f"[bold]sensitivity:[/] {prep.masking.sensitivity}")
        out.print("[bold]model:[/] " + " -> ".join(_step(app.policy, s) for s in d.steps))
        planned = {s.role for s in d.steps}
        alternates = [s for s in d.alternates if s.role not in planned]
        if alternates:
            inp = app.engine.route_input(task, prep.masking)
            out.print("[bold]if it fails:[/] " + ", ".join(
                _step(app.policy, s) + ("" if available(app.policy, inp, s.role)[0]
                                        else " - unavailable now") for s in alternates),
                highlight=False)
        for reason in d.reasons:
            out.print(f"  - {reason}", highlight=False, markup=False)
    finally:
        app.close()


def _step(policy: Policy, step: Step) -> str:
    model = policy.model(step.role)
    external = model.privacy_class == "external"
    sees = "placeholders" if step.masked else "personal values"
    return (f"{step.role} ({model.privacy_class}, {model.model or model.backend}, sees {sees}"
            + (", leaves your network" if external else "") + ")")


# -- models ----------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """List and verify the configured models."""


@models.command("list")
@handle_errors
def models_list() -> None:
    """Show every model of the portfolio: class, backend, replicas, price, status."""
    app = common.app()
    try:
        table = Table("name", "class", "backend", "model", "details", "status")
        for name, backend in app.engine.backends.items():
            model = app.policy.model(name)
            info = backend.describe()
            ok, why = backend.health()
            facts = {k: v for k, v in info.items() if k not in ("backend", "model")}
            facts.update(_portfolio_facts(model, app.policy, backend.keeps_data_local))
            details = ", ".join(f"{k}: {v}" for k, v in facts.items())
            table.add_row(name, model.privacy_class, info["backend"], info["model"], details,
                          "ready" if ok else why)
        out.print(table)
    finally:
        app.close()


def _portfolio_facts(model: ModelConfig, policy: Policy, local: bool) -> dict[str, str]:
    """What a model costs (as the ledger prices it: its own price, else the costs table) and
    the limits it was given."""
    facts: dict[str, str] = {}
    price = price_of(policy.costs, model, local)
    if isinstance(price, Price):
        facts["price"] = f"${price.input:g}/${price.output:g} per 1M tokens in/out"
    elif price is not None:
        facts["price"] = f"${price:g}/hour" + ("" if model.usd_per_hour is not None
                                               else " (costs.local_usd_per_hour)")
    if model.monthly_usd is not None:
        facts["budget"] = f"${model.monthly_usd:g}/month"
    if model.context is not None:
        facts["context"] = str(model.context)
    if model.languages:
        facts["languages"] = " ".join(model.languages)
    if model.tags:
        facts["tags"] = " ".join(model.tags)
    return facts


@models.command("verify")
@handle_errors
def models_verify() -> None:
    """Check each model deeply: sha256 of local files, reachability of every replica."""
    app = common.app()
    failed = 0
    try:
        for name, backend in app.engine.backends.items():
            try:
                out.print(f"{name}: ok — {backend.verify()}", highlight=False)
            except BatonError as exc:
                failed += 1
                err.print(f"{name}: FAILED — {exc}", highlight=False)
    finally:
        app.close()
    if failed:
        sys.exit(1)


# -- roi -------------------------------------------------------------------------------------


@cli.command()
@click.option("--since", help="YYYY-MM-DD, or 'month' for this calendar month (default: all).")
@click.option("--tenant", default=None)
@handle_errors
def roi(since: str | None, tenant: str | None) -> None:
    """Inference ROI: spend, local share, savings against all-cloud, latency, by task kind."""
    start = None
    if since == "month":
        start = month_start(datetime.now(UTC))
    elif since:
        try:
            start = datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError:
            raise InputError(f"--since {since!r}: expected YYYY-MM-DD or 'month'") from None
    settings = load_settings()
    store = open_store(settings.resolved_database_url)
    try:
        from core.engine.ledger import Ledger

        report = Ledger(store).report(since=start, tenant=tenant)
    finally:
        store.close()
    table = Table("task", "calls", "local share", "tokens in/out (cached)", "cost $",
                  "all-cloud $", "saved $", "p50 ms", "p95 ms", "egress calls")
    for row in [*report.by_kind, report.total]:
        table.add_row(
            row.kind, str(row.calls), f"{row.local_share:.0%}",
            f"{row.prompt_tokens}/{row.completion_tokens} ({row.cached_tokens})",
            f"{row.cost_usd:.4f}", f"{row.baseline_cost_usd:.4f}", f"{row.savings_usd:.4f}",
            f"{row.p50_ms:.0f}", f"{row.p95_ms:.0f}", str(row.egress_calls),
            style="bold" if row.kind == "all" else None,
        )
    out.print(table)
