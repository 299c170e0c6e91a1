"""The ``baton`` command line.

Every failure Baton expects (bad settings, bad policy, missing model, unknown kind, ...) ends in
one line on stderr and a non-zero exit; tracebacks are for bugs only.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from baton.files import load_contact, load_contacts_csv
from baton.wiring import App, build_app
from core.engine.ledger import Receipt, month_start
from core.errors import BatonError, ConsentError, InputError
from core.jobs.lifecycle import Jobs
from core.settings import load_settings
from core.store import open_store
from core.tasks.kinds import Task

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_BRIEF = "Recommend the Rain Cover, which keeps a pack dry in any weather."
# The sample brief in each language (a brief names what it is about: the guards hold copy to it).
DEFAULT_BRIEFS = {"en": DEFAULT_BRIEF,
                  "ja": "レインカバーをおすすめする。どんな天気でもバックパックを濡らさない。"}

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


def _app() -> App:
    return build_app()


@click.group()
@click.version_option(package_name="baton")
def cli() -> None:
    """Baton: personalized marketing copy from a local or cloud model, chosen by policy."""


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
    app = _app()
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
    """Show which backend would run a task, and every reason why."""
    app = _app()
    try:
        task = Task(kind=kind, context=load_contact(contact_file, language), brief=brief,
                    tenant=tenant, tier=tier, language=language)  # type: ignore[arg-type]
        prep = app.engine.prepare(task)
        d = prep.decision
        out.print(f"[bold]action:[/] {d.action}   [bold]rule:[/] {d.rule or '(default)'}   "
                  f"[bold]sensitivity:[/] {prep.masking.sensitivity}")
        out.print("[bold]steps:[/] " + " -> ".join(
            f"{s.role}{' (masked)' if s.masked and s.role == 'cloud' else ''}" for s in d.steps))
        for reason in d.reasons:
            out.print(f"  - {reason}", highlight=False, markup=False)
    finally:
        app.close()


# -- models ----------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """List and verify the configured models."""


@models.command("list")
@handle_errors
def models_list() -> None:
    """Show the backend and model of each role."""
    app = _app()
    try:
        table = Table("role", "backend", "model", "details", "status")
        for role, backend in app.engine.backends.items():
            info = backend.describe()
            ok, why = backend.health()
            details = ", ".join(f"{k}: {v}" for k, v in info.items() if k not in ("backend", "model"))
            table.add_row(role, info["backend"], info["model"], details, "ready" if ok else why)
        out.print(table)
    finally:
        app.close()


@models.command("verify")
@handle_errors
def models_verify() -> None:
    """Check each model deeply: sha256 of local files, reachability of endpoints."""
    app = _app()
    failed = 0
    try:
        for role, backend in app.engine.backends.items():
            try:
                out.print(f"{role}: ok — {backend.verify()}", highlight=False)
            except BatonError as exc:
                failed += 1
                err.print(f"{role}: FAILED — {exc}", highlight=False)
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


# -- db --------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@handle_errors
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest revision."""
    settings = load_settings()
    store = open_store(settings.resolved_database_url)
    store.close()
    out.print(f"database is up to date: {store.engine.url.render_as_string(hide_password=True)}",
              highlight=False)


# -- web, workers, jobs, keys (step 2) ------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@handle_errors
def serve(host: str, port: int) -> None:
    """Run the web gateway under gunicorn (BATON_WEB_WORKERS x BATON_WEB_THREADS)."""
    from baton.serve import serve as run

    run(load_settings(), host, port)


@cli.command()
@handle_errors
def worker() -> None:
    """Run the job workers and the periodic reconciler."""
    from baton.serve import work

    work(load_settings())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@handle_errors
def up(host: str, port: int) -> None:
    """Run the gateway and a worker together (the embedded default)."""
    from baton.serve import up as run

    run(load_settings(), host, port)


def _jobs() -> Jobs:
    settings = load_settings()
    return Jobs(open_store(settings.resolved_database_url),
                retention=timedelta(days=settings.retention_days))


@cli.group()
def jobs() -> None:
    """Inspect and retry jobs."""


@jobs.command("list")
@click.option("--state", type=click.Choice(["queued", "running", "done", "failed", "dead"]))
@click.option("--limit", default=50, show_default=True)
@handle_errors
def jobs_list(state: str | None, limit: int) -> None:
    """The newest jobs, optionally of one state."""
    table = Table("kind", "tenant", "state", "tries", "updated", "error")
    table.add_column("id", no_wrap=True, min_width=32)  # whole, for `baton jobs show`
    for job in _jobs().list(state=state, limit=limit):
        table.add_row(job.kind, job.tenant, job.state, str(job.attempts),
                      f"{job.updated_at:%Y-%m-%d %H:%M:%S}", (job.error or "")[:60], job.id)
    out.print(table)


@jobs.command("show")
@click.argument("job_id")
@handle_errors
def jobs_show(job_id: str) -> None:
    """One job with its payload, result and error."""
    job = _jobs().get(job_id)
    if job is None:
        raise InputError(f"no job {job_id} (see: baton jobs list)")
    out.print_json(json.dumps({
        "id": job.id, "source": job.source, "kind": job.kind, "tenant": job.tenant,
        "state": job.state, "attempts": job.attempts, "max_attempts": job.max_attempts,
        "run_after": job.run_after.isoformat(), "error": job.error, "result": job.result,
        "payload": job.payload,
    }, ensure_ascii=False, default=str))


@jobs.command("retry")
@click.argument("job_id")
@handle_errors
def jobs_retry(job_id: str) -> None:
    """Queue a failed or dead job again (a running worker picks it up within a minute)."""
    if not _jobs().retry(job_id):
        raise InputError(f"job {job_id} is not failed or dead (see: baton jobs show {job_id})")
    out.print(f"queued {job_id}", highlight=False)


@jobs.command("retry-dead")
@handle_errors
def jobs_retry_dead() -> None:
    """Queue every dead job again."""
    store = _jobs()
    ids = [j.id for j in store.list(state="dead", limit=10_000)]
    for job_id in ids:
        store.retry(job_id)
    out.print(f"queued {len(ids)} dead job(s)", highlight=False)


@cli.command()
@click.argument("tenant")
@click.argument("contact")
@handle_errors
def forget(tenant: str, contact: str) -> None:
    """Erase what Baton stored about one CONTACT of TENANT (a privacy deletion).

    CONTACT is a HubSpot contact id (TENANT hubspot:<portal id>), a Salesforce record id (TENANT
    salesforce:<org id>, or an API key's tenant) or an email address (the generic task API).
    Job payloads, drafts and write-back records go; receipts keep only their counts."""
    from core.retention import forget as erase
    from core.retention import subject_for

    mentions = [contact.strip()] if "@" in contact else []
    done = erase(open_store(load_settings().resolved_database_url), tenant, subject_for(contact),
                 mentions=mentions)
    out.print(f"{tenant} {contact}: erased {done['jobs']} job(s), {done['writebacks']} write-back "
              f"record(s), {done['replies']} reply draft(s); {done['receipts']} receipt(s) keep "
              "only their counts", highlight=False, markup=False)
    if mentions:
        err.print("Jobs from HubSpot webhooks and workflow actions are filed under the contact's "
                  "id: run this again with the HubSpot or Salesforce id as well.",
                  highlight=False, markup=False)


@cli.group()
def keys() -> None:
    """API keys for the generic task API."""


@keys.command("create")
@click.option("--name", required=True, help="Who uses it, e.g. zapier.")
@click.option("--tenant", default="default", show_default=True)
@handle_errors
def keys_create(name: str, tenant: str) -> None:
    """Create a key; it is shown once and only its SHA-256 is stored."""
    from core.credentials.apikeys import ApiKeys

    key_id, key = ApiKeys(open_store(load_settings().resolved_database_url)).create(name, tenant)
    err.print(f"key {key_id} for tenant {tenant!r} (shown once):", highlight=False)
    click.echo(key)


# -- manifests and platform set-up (step 3 on) ----------------------------------------------------


@cli.group()
def manifests() -> None:
    """App manifests of every platform, as data."""


@manifests.command("render")
@click.option("--base-url", required=True, help="Baton's public URL, e.g. https://baton.example.com")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@handle_errors
def manifests_render(base_url: str, out_dir: Path) -> None:
    """Write every platform's manifests with BASE_URL filled in."""
    import manifests as data

    try:
        written = data.render(base_url, out_dir)
    except ValueError as exc:
        raise InputError(f"--base-url: {exc}") from None
    for path in written:
        click.echo(str(path))


@cli.group()
def hubspot() -> None:
    """Connect HubSpot portals and install the app's pieces."""


@hubspot.command("setup")
@click.option("--portal-id", type=int, help="Create the Baton properties in this portal "
              "(default: BATON_HUBSPOT_PORTAL_ID).")
@click.option("--app-id", type=int, help="Register webhooks and workflow actions for this app.")
@click.option("--developer-api-key", envvar="BATON_HUBSPOT_DEVELOPER_API_KEY",
              help="The developer account's API key (or BATON_HUBSPOT_DEVELOPER_API_KEY).")
@click.option("--base-url", help="Baton's public URL (needed with --app-id).")
@handle_errors
def hubspot_setup(portal_id: int | None, app_id: int | None, developer_api_key: str | None,
                  base_url: str | None) -> None:
    """Create the Baton property group and properties; register webhook subscriptions and the
    workflow action definitions."""
    import manifests as data
    from baton.wiring import build_hubspot
    from connectors.hubspot.setup import create_properties, register_app

    settings = load_settings()
    portal_id = portal_id or settings.hubspot_portal_id
    if portal_id is None and app_id is None:
        raise InputError("nothing to do: give --portal-id (or set BATON_HUBSPOT_PORTAL_ID) "
                         "and/or --app-id with --developer-api-key and --base-url")
    if portal_id is not None:
        store = open_store(settings.resolved_database_url)
        try:
            hub = build_hubspot(settings, store, lambda: build_app(settings))
            for line in create_properties(hub.auth.client(portal_id)) or ["properties already there"]:
                click.echo(f"portal {portal_id}: {line}")
        finally:
            store.close()
    if app_id is not None:
        if not developer_api_key or not base_url:
            raise InputError("--app-id needs --developer-api-key (or BATON_HUBSPOT_DEVELOPER_API_KEY) "
                             "and --base-url")
        try:
            base = data.check_base_url(base_url)
        except ValueError as exc:
            raise InputError(f"--base-url: {exc}") from None
        for line in register_app(app_id=app_id, developer_key=developer_api_key, base_url=base,
                                 api_base=settings.hubspot_api_base) or ["app already set up"]:
            click.echo(f"app {app_id}: {line}")


@hubspot.command("project")
@click.option("--base-url", required=True, help="Baton's public URL, e.g. https://baton.example.com")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Folder for the project (upload it with: hs project upload).")
@click.option("--distribution", type=click.Choice(["marketplace", "private"]),
              default="marketplace", show_default=True)
@handle_errors
def hubspot_project(base_url: str, out_dir: Path, distribution: str) -> None:
    """Write Baton as a HubSpot developer-platform project (hsproject.json, the app, its webhooks
    and workflow actions) for apps on projects, whose features setup cannot edit."""
    from connectors.hubspot.project import render_project

    try:
        written = render_project(base_url, out_dir, distribution=distribution)
    except ValueError as exc:
        raise InputError(f"--base-url: {exc}") from None
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write the project ({exc.strerror})") from None
    for path in written:
        click.echo(str(path))


@hubspot.command("install-url")
@handle_errors
def hubspot_install_url() -> None:
    """The URL a portal admin opens to install the OAuth app."""
    from baton.wiring import build_hubspot

    settings = load_settings()
    store = open_store(settings.resolved_database_url)
    try:
        click.echo(build_hubspot(settings, store, lambda: build_app(settings)).auth.install_url())
    finally:
        store.close()


def main() -> None:
    # Settings errors can happen before any command body runs (e.g. in load_settings).
    cli.main(prog_name="baton")


if __name__ == "__main__":
    main()
