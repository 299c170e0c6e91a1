"""``baton salesforce``: connect an org (its login kept encrypted) and check it is ready."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from baton.cli.common import cli, handle_errors
from baton.wiring import build_app, build_salesforce
from connectors.salesforce.connector import SalesforceConnector
from core.errors import InputError
from core.settings import load_settings
from core.store import open_store

# What Baton writes, by sObject: the fields the permission set must make editable
WRITTEN = {
    "Lead": ("Baton_Email_Subject__c", "Baton_Email_Body__c", "Baton_Receipt__c",
             "Baton_Generated_At__c"),
    "Contact": ("Baton_Email_Subject__c", "Baton_Email_Body__c", "Baton_Receipt__c",
                "Baton_Generated_At__c"),
    "Task": ("Baton_Job_Key__c",),
}


@cli.group()
def salesforce() -> None:
    """Connect Salesforce orgs and check them."""


@contextmanager
def _connector() -> Iterator[SalesforceConnector]:
    from connectors.salesforce.settings import load_salesforce_settings

    settings = load_settings()
    store = open_store(settings.resolved_database_url)
    try:
        yield build_salesforce(settings, store, lambda: build_app(settings),
                               load_salesforce_settings())
    finally:
        store.close()


@salesforce.command("connect")
@click.option("--method", type=click.Choice(["jwt", "client-credentials"]), default="jwt",
              show_default=True, help="The connected app's OAuth flow.")
@click.option("--consumer-key", required=True, help="The connected app's consumer key.")
@click.option("--username", help="JWT: the integration user's username.")
@click.option("--private-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JWT: the PEM private key of the certificate uploaded to the connected app.")
@click.option("--consumer-secret", envvar="BATON_SALESFORCE_CONSUMER_SECRET",
              help="Client credentials: the consumer secret (or BATON_SALESFORCE_CONSUMER_SECRET).")
@click.option("--domain", default=None,
              help="login (production), test (a sandbox), or <mydomain>.my for client credentials.")
@handle_errors
def salesforce_connect(method: str, consumer_key: str, username: str | None,
                       private_key_file: Path | None, consumer_secret: str | None,
                       domain: str | None) -> None:
    """Log in once, learn the org and the integration user, keep the login encrypted."""
    from connectors.salesforce.auth import OrgLogin

    if method == "jwt":
        if not username or private_key_file is None:
            raise InputError("--method jwt needs --username and --private-key-file")
        login = OrgLogin("jwt", consumer_key, domain=domain or "login", username=username,
                         private_key=private_key_file.read_text(encoding="utf-8"))
    else:
        if not consumer_secret or not domain:
            raise InputError("--method client-credentials needs --consumer-secret (or "
                             "BATON_SALESFORCE_CONSUMER_SECRET) and --domain <mydomain>.my")
        login = OrgLogin("client_credentials", consumer_key, domain=domain,
                         consumer_secret=consumer_secret)
    with _connector() as connector:
        stored = connector.auth.connect(login)
        org = stored.org_id
        click.echo(f"org {org} connected at {stored.instance_url}; Baton writes as user "
                   f"{stored.user_id} (its own changes start nothing)")
        if org not in connector.settings.orgs():
            click.echo(f"next: add {org} to BATON_SALESFORCE_ORG_IDS so that its outbound "
                       "messages are heard", err=True)


@salesforce.command("check")
@click.option("--org", "org_id", help="The org (15 or 18 characters; default: every connected one).")
@handle_errors
def salesforce_check(org_id: str | None) -> None:
    """API usage, and whether the fields Baton writes exist and are editable by its user."""
    with _connector() as connector:
        orgs = [org_id] if org_id else connector.auth.orgs()
        if not orgs:
            raise InputError("no Salesforce org is connected (run: baton salesforce connect)")
        problems = 0
        for org in orgs:
            client = connector.auth.client(org)
            daily = client.limits().get("DailyApiRequests", {})
            used = int(daily.get("Max", 0)) - int(daily.get("Remaining", 0))
            click.echo(f"org {org}: {used} of {daily.get('Max', '?')} API calls used in the last "
                       "24 hours")
            for sobject, fields in WRITTEN.items():
                described = {f["name"]: f for f in client.describe(sobject).get("fields", [])}
                for name in fields:
                    if name not in described:
                        problems += 1
                        click.echo(f"  {sobject}.{name}: missing (deploy manifests/salesforce)")
                    elif sobject == "Task" and not described[name].get("externalId"):
                        problems += 1
                        click.echo(f"  {sobject}.{name}: not an External ID (Baton upserts Tasks "
                                   "by it: deploy manifests/salesforce)")
                    elif not described[name].get("updateable"):
                        problems += 1
                        click.echo(f"  {sobject}.{name}: not editable by Baton's user (assign "
                                   "the Baton_Integration permission set)")
            if not problems:
                click.echo("  Baton's fields on Lead, Contact and Task are in place and editable")
        if problems:
            sys.exit(1)
