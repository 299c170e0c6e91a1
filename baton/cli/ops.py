"""Running Baton: ``db``, ``serve``, ``worker``, ``up``, ``jobs``, ``forget``, ``keys``, ``manifests``."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import click
from rich.table import Table

from baton.cli.common import cli, err, handle_errors, out
from core.errors import InputError
from core.jobs.lifecycle import Jobs
from core.settings import load_settings
from core.store import open_store

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


# -- web, workers, jobs, keys ---------------------------------------------------------------------


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


@keys.command("list")
@handle_errors
def keys_list() -> None:
    """Every key's id, name, tenant and whether it is revoked (never the key)."""
    from core.credentials.apikeys import ApiKeys

    table = Table("name", "tenant", "created", "revoked")
    table.add_column("id", no_wrap=True, min_width=32)  # whole, for `baton keys revoke`
    for row in ApiKeys(open_store(load_settings().resolved_database_url)).list():
        table.add_row(row.name, row.tenant, f"{row.created_at:%Y-%m-%d %H:%M}",
                      f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "", row.id)
    out.print(table)


@keys.command("revoke")
@click.argument("key_id")
@handle_errors
def keys_revoke(key_id: str) -> None:
    """Refuse a key from now on (requests with it get 401)."""
    from core.credentials.apikeys import ApiKeys

    if not ApiKeys(open_store(load_settings().resolved_database_url)).revoke(key_id):
        raise InputError(f"no active key {key_id!r} (see: baton keys list)")
    err.print(f"key {key_id} revoked", highlight=False)


# -- manifests and platform set-up -----------------------------------------------------------------


@cli.group()
def manifests() -> None:
    """App manifests of every platform, as data."""


@manifests.command("render")
@click.option("--base-url", required=True, help="Baton's public URL, e.g. https://baton.example.com")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path))
@click.option("--salesforce-user", help="The username of Baton's integration user in the org: "
              "outbound messages are sent as this user (renders the Salesforce SFDX project).")
@click.option("--salesforce-path-token", envvar="BATON_SALESFORCE_PATH_TOKEN", default="",
              help="The secret path segment of the outbound-message URL, if you use one.")
@handle_errors
def manifests_render(base_url: str, out_dir: Path, salesforce_user: str | None,
                     salesforce_path_token: str) -> None:
    """Write every platform's manifests with BASE_URL filled in (HubSpot's, Slack's
    manifest.yml); with --salesforce-user, also the Salesforce project (deploy it with:
    sf project deploy start -d force-app)."""
    import manifests as data
    from connectors.slack.settings import load_slack_settings
    from manifests import sfdx, slack
    from webhooks.openapi import document

    try:
        written = data.render(base_url, out_dir)
    except ValueError as exc:
        raise InputError(f"--base-url: {exc}") from None
    written += slack.render(out_dir / "slack", data.check_base_url(base_url),
                            load_slack_settings().command)
    if salesforce_user is not None:
        if not re.fullmatch(r"[^@\s<>&\"']+@[^@\s<>&\"']+", salesforce_user):
            raise InputError(f"--salesforce-user: expected a Salesforce username such as "
                             f"baton@yourco.com, got {salesforce_user[:60]!r}")
        if salesforce_path_token and not re.fullmatch(r"[A-Za-z0-9_-]{8,200}", salesforce_path_token):
            raise InputError("--salesforce-path-token: 8 to 200 letters, digits, - or _")
        written += sfdx.render(out_dir / "salesforce", data.check_base_url(base_url),
                               salesforce_user, document(), salesforce_path_token)
    for path in written:
        click.echo(str(path))
    if salesforce_user is None:
        click.echo("salesforce: not rendered (give --salesforce-user, Baton's integration user)",
                   err=True)
