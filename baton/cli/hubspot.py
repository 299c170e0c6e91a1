"""``baton hubspot``: set a portal and the app up, render the developer project, the install URL."""

from __future__ import annotations

from pathlib import Path

import click

from baton.cli.common import cli, handle_errors
from baton.wiring import build_app
from core.errors import InputError
from core.settings import load_settings
from core.store import open_store


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
    from connectors.hubspot.settings import load_hubspot_settings
    from connectors.hubspot.setup import create_properties, register_app

    settings, own = load_settings(), load_hubspot_settings()
    portal_id = portal_id or own.portal_id
    if portal_id is None and app_id is None:
        raise InputError("nothing to do: give --portal-id (or set BATON_HUBSPOT_PORTAL_ID) "
                         "and/or --app-id with --developer-api-key and --base-url")
    if portal_id is not None:
        store = open_store(settings.resolved_database_url)
        try:
            hub = build_hubspot(settings, store, lambda: build_app(settings), own)
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
                                 api_base=own.api_base) or ["app already set up"]:
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
