"""Composition root: settings + policy -> backends -> engine."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from connectors.base import Connector, ConnectorJobs
from connectors.hubspot.auth import HubSpotAuth
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings, load_hubspot_settings
from connectors.ratelimit import Limiters
from connectors.review import DECIDE, Desk, Reviews
from connectors.salesforce.auth import SalesforceAuth
from connectors.salesforce.client import ApiUsage
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.settings import SalesforceSettings, load_salesforce_settings
from connectors.slack.client import SlackApi
from connectors.slack.connector import SlackConnector
from connectors.slack.installations import SlackInstallations
from connectors.slack.settings import SlackSettings, load_slack_settings
from core.backends.base import Backend, BackendFactory
from core.backends.builtin import default_backends
from core.backends.llama import LlamaPool
from core.credentials.apikeys import ApiKeys
from core.credentials.tokens import TokenCipher, TokenVault
from core.delivery.outbox import Outbox
from core.delivery.replies import Replies
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.engine.routing import Role
from core.errors import ConfigError
from core.jobs.lifecycle import Jobs
from core.jobs.queue import Dispatcher, make_huey
from core.jobs.runner import Handler, JobRunner
from core.policy import Policy, load_policy, model_key
from core.registry import Registry
from core.review import Drafts
from core.settings import Settings, load_settings
from core.store import JobRow, Store, open_store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Task, TaskKind
from webhooks.metrics import Metrics
from webhooks.ops import job_counts
from webhooks.services import Services


@dataclass
class App:
    """Everything a command needs, built once from settings."""

    settings: Settings
    policy: Policy
    store: Store
    engine: Engine

    def close(self) -> None:
        self.store.close()


def build_backends(settings: Settings, policy: Policy,
                   registry: Registry[BackendFactory] | None = None) -> dict[Role, Backend]:
    """One backend per model of the policy. A model's key variable that is not set, or a
    backend nobody registered, stops the start with the model's path in ``baton.toml``."""
    registry = registry or default_backends(LlamaPool())
    source = str(settings.config or "embedded baton.toml")
    backends: dict[Role, Backend] = {}
    for name in policy.model_names():
        model = policy.model(name)
        where = model_key(name)
        if model.backend not in registry:
            raise ConfigError(f"{source}: {where}.backend: unknown backend {model.backend!r}; "
                              f"registered: {', '.join(registry.names())}")
        if model.key_env and not os.environ.get(model.key_env):
            raise ConfigError(f"{source}: {where}.key_env: the environment variable "
                              f"{model.key_env} is not set (it holds the model's API key)")
        own = settings
        if model.path is not None:  # another in-process model than the embedded one
            own = settings.model_copy(update={"model_path": Path(model.path),
                                              "model_sha256": model.sha256})
        backends[name] = registry.get(model.backend)(own, model)
    return backends


def build_app(settings: Settings | None = None, policy: Policy | None = None, *,
              backends: dict[Role, Backend] | None = None,
              kinds: Registry[TaskKind] | None = None) -> App:
    settings = settings or load_settings()
    policy = policy or load_policy(settings.config)
    store = open_store(settings.resolved_database_url)
    engine = Engine(policy, backends or build_backends(settings, policy),
                    kinds or default_task_kinds(), Ledger(store))
    return App(settings, policy, store, engine)


# -- web and workers -------------------------------------------------------------------------


def task_handler(get_app: Callable[[], App]) -> Handler:
    """Runs a generic API task (job kind ``task``) through the engine."""

    def handle(job: JobRow) -> dict[str, Any]:
        p = job.payload
        result = get_app().engine.run(Task(
            kind=str(p["kind"]), context=dict(p["context"]), brief=str(p.get("brief", "")),
            tenant=job.tenant, tier=p.get("tier", "routine"), language=str(p.get("language", "en")),
            id=job.id,
        ))
        return {"output": result.output, "receipt_id": result.receipt.id,
                "route": result.receipt.role, "action": result.decision.action}

    return handle


def default_handlers(get_app: Callable[[], App], connector_jobs: ConnectorJobs | None = None,
                     reviews: Reviews | None = None) -> Registry[Handler]:
    """The generic API task, every registered connector's job kinds, and reviewers' decisions."""
    handlers: Registry[Handler] = Registry("job kind")
    handlers.register("task", task_handler(get_app))
    for kind, handler in (connector_jobs.handlers() if connector_jobs else {}).items():
        handlers.register(kind, handler)
    if reviews is not None:
        handlers.register(DECIDE, reviews.decide)
    return handlers


def build_reviews(policy: Policy, store: Store, jobs: Jobs, connectors: Registry[Connector],
                  connector_jobs: ConnectorJobs) -> Reviews:
    """Approvals (``[[approvals]]``): drafts held by the connectors' jobs, shown and decided in
    Slack, released through the same jobs handler."""
    def desk() -> Desk:
        return cast(Desk, connectors.get("slack"))

    reviews = Reviews(policy, Drafts(store), connectors, connector_jobs, jobs, desk,
                      Replies(store))
    connector_jobs.holder = reviews
    return reviews


Peers = Callable[[str], Connector]  # another connector by name (Slack looks contacts up in CRMs)


def build_hubspot(settings: Settings, store: Store, get_app: Callable[[], App],
                  hubspot: HubSpotSettings | None = None, peers: Peers | None = None
                  ) -> HubSpotConnector:
    """HubSpot with its own settings (``BATON_HUBSPOT_*``, read here unless given)."""
    hubspot = hubspot or load_hubspot_settings()
    floor = hubspot.retention_floor_days()
    if settings.retention_days < floor:
        raise ConfigError(f"BATON_RETENTION_DAYS: at least {floor:g} days, so that dedupe keys and "
                          "drafts outlive HubSpot's 3 days of retries and its BLOCK expiry "
                          f"(BATON_HUBSPOT_BLOCK_EXPIRATION={hubspot.block_expiration}; got "
                          f"{settings.retention_days:g})")
    vault = TokenVault(store, TokenCipher.from_settings(settings.secret_key.get_secret_value(),
                                                        settings.data_dir))
    auth = HubSpotAuth(hubspot, vault, Limiters("hubspot", hubspot.requests_per_10s,
                                                 settings.queue_url))
    return HubSpotConnector(hubspot, auth, Outbox(store), Replies(store),
                            lease=timedelta(seconds=settings.job_lease_seconds))


def build_salesforce(settings: Settings, store: Store, get_app: Callable[[], App],
                     salesforce: SalesforceSettings | None = None, peers: Peers | None = None
                     ) -> SalesforceConnector:
    """Salesforce with its own settings (``BATON_SALESFORCE_*``, read here unless given)."""
    salesforce = salesforce or load_salesforce_settings()
    vault = TokenVault(store, TokenCipher.from_settings(settings.secret_key.get_secret_value(),
                                                        settings.data_dir))
    usage = ApiUsage(settings.data_dir / "salesforce-api-usage.json")
    return SalesforceConnector(salesforce, SalesforceAuth(salesforce, vault, usage), Outbox(store),
                               ApiKeys(store), Replies(store),
                               lease=timedelta(seconds=settings.job_lease_seconds))


def build_slack(settings: Settings, store: Store, get_app: Callable[[], App],
                slack: SlackSettings | None = None, peers: Peers | None = None) -> SlackConnector:
    """Slack with its own settings (``BATON_SLACK_*``); contacts are looked up in the CRM
    connectors (``peers``) the workspace is mapped to in the policy."""
    slack = slack or load_slack_settings()
    vault = TokenVault(store, TokenCipher.from_settings(settings.secret_key.get_secret_value(),
                                                        settings.data_dir))
    installations = SlackInstallations(vault)
    ledger = Ledger(store)

    def crm(name: str) -> Connector:
        if peers is None:
            raise ConfigError("Slack needs the CRM connectors to look contacts up")
        return peers(name)

    return SlackConnector(slack, installations, SlackApi(slack, installations, settings.queue_url),
                          load_policy(settings.config), Outbox(store), crm,
                          lambda since, tenant: ledger.report(since=since, tenant=tenant),
                          drafts=Drafts(store))


def api_usage(connectors: Registry[Connector]) -> Callable[[], dict[tuple[str, str], tuple[int, int]]]:
    """Every connector's API usage as its platform reports it, for ``/metrics``."""
    def usage() -> dict[tuple[str, str], tuple[int, int]]:
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for name in connectors:
            report = getattr(connectors.get(name), "api_usage", None)
            if report is not None:
                out.update({(name, account): pair for account, pair in report().items()})
        return out
    return usage


# The platforms this Baton serves: the only list of them. A factory takes the core settings, the
# store, the engine's app and the connector's own settings (None: read from the environment).
CONNECTORS: tuple[tuple[str, Callable[[Settings, Store, Callable[[], App], Any, Peers],
                                     Connector]], ...] = (
    ("hubspot", build_hubspot),
    ("salesforce", build_salesforce),
    ("slack", build_slack),
)


def build_connectors(settings: Settings, store: Store, get_app: Callable[[], App],
                     own: Mapping[str, Any] | None = None) -> Registry[Connector]:
    """Every connector, by name; ``own`` gives a connector its settings by name (tests)."""
    connectors: Registry[Connector] = Registry("connector")
    for name, factory in CONNECTORS:
        connectors.register(name, factory(settings, store, get_app, (own or {}).get(name),
                                          connectors.get))
    return connectors


def build_services(settings: Settings | None = None, *, immediate: bool = False,
                   handlers: Registry[Handler] | None = None,
                   engine_app: Callable[[], App] | None = None,
                   dispatch_new: bool | None = None,
                   connector_settings: Mapping[str, Any] | None = None) -> Services:
    """The services of a web process (and, with ``immediate``, a worker in the same process).
    ``dispatch_new``: whether the web's inbox dispatches new jobs itself (default: only when
    ``immediate``; otherwise the workers' pump does)."""
    settings = settings or load_settings()
    policy = load_policy(settings.config)
    store = open_store(settings.resolved_database_url)
    jobs = Jobs(store, retention=timedelta(days=settings.retention_days))
    lazy: dict[str, App] = {}
    building = threading.Lock()

    def get_app() -> App:
        if engine_app is not None:
            return engine_app()
        with building:  # one engine (and one loaded model) per process, whoever asks first
            if "app" not in lazy:
                lazy["app"] = build_app(settings, policy)
        return lazy["app"]

    def warm_up() -> None:
        for backend in get_app().engine.backends.values():
            load = getattr(backend, "loaded", None)  # the in-process model: load it now
            if load is not None and backend.health()[0]:
                load()

    connectors = build_connectors(settings, store, get_app, connector_settings)
    connector_jobs = ConnectorJobs(connectors, lambda: get_app().engine, Replies(store))
    reviews = build_reviews(policy, store, jobs, connectors, connector_jobs)
    runner = JobRunner(jobs, handlers or default_handlers(get_app, connector_jobs, reviews),
                       timedelta(seconds=settings.job_lease_seconds),
                       batch_handlers=connector_jobs.batch_handlers() if handlers is None else None)
    dispatcher = Dispatcher(make_huey(settings, immediate=immediate), jobs, runner.run,
                            redispatch_after=timedelta(seconds=settings.redispatch_seconds),
                            run_jobs=runner.run_many, batch_sizes=connector_jobs.batch_sizes())
    runner.retry_later = dispatcher.dispatch_later
    dispatcher.sweeps.append(lambda: reviews.expire_due(jobs))
    local = build_backends(settings, policy)["local"]
    return Services(settings=settings, store=store, jobs=jobs, dispatcher=dispatcher,
                    metrics=Metrics(lambda: job_counts(store), api_usage(connectors)),
                    model_ready=local.health,
                    connectors=connectors, dispatch_new=immediate if dispatch_new is None else dispatch_new,
                    warm_up=warm_up, reviews=reviews)
