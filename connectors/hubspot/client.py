"""HubSpot API access for one portal, through the official hubspot-api-client.

Every SDK call goes through :meth:`HubSpotClient._call`, installed as the SDK's API factory hook:

* a client-side rate limiter per portal (``BATON_HUBSPOT_REQUESTS_PER_10S``, default 100: the
  private-app floor; OAuth apps get 110 per installed account) — a rolling 10-second window like
  HubSpot's own, so a burst can never exceed the limit, unlike a token bucket refilled by the second;
  kept in Redis when the queue is (scale-out), so all worker processes share one window and pause;
* 429: nobody in this process sends to that portal before ``Retry-After`` (HubSpot's REST 429s may
  omit it: then the next window), then retry; 5xx and connection trouble: backoff with jitter;
  after ``BATON_HUBSPOT_MAX_ATTEMPTS`` the call raises :class:`PlatformUnavailable` and the job is
  retried later by the job runner, so nothing is lost;
* 401: the token is refreshed once (OAuth) and the call repeated;
* the SDK's own urllib3 retry is configured for connection errors only (``connect=2``): statuses
  are handled here so that the limiter sees every attempt.

Everything is keyed by portal: a client holds one portal's token and limiter and nothing else.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hubspot import HubSpot
from hubspot.automation.actions import (
    BatchInputCallbackCompletionBatchRequest,
    CallbackCompletionBatchRequest,
    CallbackCompletionRequest,
)
from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.contacts import SimplePublicObjectInput
from hubspot.crm.objects import BatchReadInputSimplePublicObjectId, SimplePublicObjectId
from hubspot.crm.objects.notes import (
    AssociationSpec,
    Filter,
    FilterGroup,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)
from hubspot.discovery.discovery_base import DiscoveryBase
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from connectors.errors import (
    ConnectorError,
    PlatformRejected,
    PlatformUnavailable,
    RecordNotFound,
)
from connectors.ratelimit import Limiter

log = logging.getLogger("baton.hubspot")

NOTE_TO_CONTACT = 202  # HUBSPOT_DEFINED association type id
WINDOW = 10.0  # seconds: HubSpot counts its request limits over a rolling ten seconds


TokenSource = Callable[[str | None], str]  # (rejected token or None) -> a valid access token


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (HubSpot's workflow docs speak of milliseconds: a
    value over 1000 is read as such)."""
    value = None
    if headers is not None:
        for k, v in dict(headers).items():
            if str(k).lower() == "retry-after":
                value = v
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is not None and seconds > 1000:
        seconds /= 1000
    return float(seconds) if seconds is not None else None


class HubSpotClient:
    def __init__(self, portal: int, tokens: TokenSource, limiter: Limiter, *, base_url: str,
                 max_attempts: int = 5, max_wait: float = 30.0, timeout: float = 15.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.portal, self.tokens, self.limiter = portal, tokens, limiter
        self.timeout = timeout  # every call: a hung HubSpot never holds a worker thread for good
        self.max_attempts, self.max_wait, self.sleep = max_attempts, max_wait, sleep
        # urllib3 retries connection failures only; a 429 must reach _call, which pauses the
        # whole portal (urllib3 would sleep in this thread alone, or give up with status=0).
        retry = Retry(total=2, connect=2, read=0, redirect=0, status=0, other=0,
                      respect_retry_after_header=False, raise_on_status=False)
        self.sdk = HubSpot(host=base_url.rstrip("/"), retry=retry, api_factory=self._api_factory)

    # -- the hook around every SDK call ----------------------------------------------------------

    def _api_factory(self, package: Any, api_name: str, config: dict[str, Any]) -> Any:
        api = DiscoveryBase._default_api_factory(package, api_name, config)
        client = api.api_client
        call = client.call_api

        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self._call(client.configuration, call, args, kwargs)

        client.call_api = guarded
        return api

    def _call(self, configuration: Any, call: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        rejected: str | None = None
        for attempt in range(1, self.max_attempts + 1):
            configuration.access_token = self.tokens(rejected)
            self.limiter.acquire()
            try:
                return call(*args, **{**kwargs, "_request_timeout": self.timeout})
            except Urllib3Error as exc:
                reason, wait = f"connection failed ({type(exc).__name__})", self._backoff(attempt)
            except Exception as exc:
                status = getattr(exc, "status", None)
                if not isinstance(status, int):
                    raise
                if status == 401 and rejected is None:
                    rejected = configuration.access_token  # refresh once, then try again
                    continue
                if status == 429:
                    ra = retry_after(getattr(exc, "headers", None))
                    wait = min(ra if ra is not None else WINDOW, self.max_wait)
                    self.limiter.pause(wait)  # every thread on this portal waits, not just us
                    reason = "rate limited (429)"
                elif status >= 500 or status in (408, 423):
                    reason, wait = f"HubSpot answered {status}", self._backoff(attempt)
                else:
                    raise translate(exc, f"portal {self.portal}: {_method(args)}") from None
            if attempt == self.max_attempts:
                raise PlatformUnavailable(f"HubSpot portal {self.portal}: {reason} after "
                                          f"{attempt} attempts; the job will be retried")
            log.info("hubspot call retried", extra={"portal": self.portal, "reason": reason,
                                                    "wait_s": round(wait, 2), "attempt": attempt})
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        return float(min(self.max_wait, 0.5 * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0))

    # -- CRM reads ---------------------------------------------------------------------------------

    def contact(self, contact_id: str, properties: list[str]) -> tuple[dict[str, str],
                                                                       dict[str, list[str]]]:
        """The contact's properties and the ids of its associated companies and deals."""
        found = self.sdk.crm.contacts.basic_api.get_by_id(
            contact_id, properties=properties, associations=["companies", "deals"], archived=False)
        # v4 lists an associated id once per association label: each id once, in order
        links = {kind: list(dict.fromkeys(a.id for a in (coll.results or [])))
                 for kind, coll in (found.associations or {}).items()}
        return _props(found.properties), links

    def find_contact(self, key: str, properties: list[str], *, by: str | None = None
                     ) -> tuple[str, dict[str, str]]:
        """A contact's id and properties, by record id or, with ``by``, by a unique property
        (``email``); :class:`RecordNotFound` if there is none."""
        found = self.sdk.crm.contacts.basic_api.get_by_id(key, properties=properties,
                                                         id_property=by, archived=False)
        return str(found.id), _props(found.properties)

    def read(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict[str, str]]:
        """Objects by id, 100 per batch call."""
        out: list[dict[str, str]] = []
        for i in range(0, len(ids), 100):
            reply = self.sdk.crm.objects.batch_api.read(object_type, BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=x) for x in ids[i:i + 100]], properties=properties,
                properties_with_history=[]), archived=False)
            out += [{"id": r.id, **_props(r.properties)} for r in reply.results or []]
            errors = getattr(reply, "errors", None) or []  # a 207: some ids could not be read
            if errors:
                log.info("hubspot batch read partly failed", extra={
                    "portal": self.portal, "object_type": object_type,
                    "errors": [getattr(e, "category", "") for e in errors][:5]})
        return out

    def associated(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
        """Associated object ids for many objects in one call per 100."""
        out: dict[str, list[str]] = {}
        for i in range(0, len(ids), 100):
            reply = self.sdk.crm.associations.v4.batch_api.get_page(
                from_type, to_type, BatchInputPublicFetchAssociationsBatchRequest(
                    inputs=[PublicFetchAssociationsBatchRequest(id=x) for x in ids[i:i + 100]]))
            for r in reply.results or []:
                out[str(r._from.id)] = list(dict.fromkeys(str(t.to_object_id) for t in r.to or []))
        return out

    def products(self, limit: int = 100) -> list[dict[str, str]]:
        """The product library (the catalog recommendations come from)."""
        page = self.sdk.crm.products.basic_api.get_page(
            limit=limit, properties=["name", "hs_sku", "description", "price"], archived=False)
        return [{"id": r.id, **_props(r.properties)} for r in page.results or []]

    # -- write-back ---------------------------------------------------------------------------------

    def update_contact(self, contact_id: str, properties: dict[str, str]) -> dict[str, str]:
        self.sdk.crm.contacts.basic_api.update(
            contact_id, simple_public_object_input=SimplePublicObjectInput(properties=properties))
        return {"contact_id": contact_id}

    def create_note(self, contact_id: str, body: str, when: datetime | None = None) -> str:
        when = when or datetime.now(UTC)
        note = self.sdk.crm.objects.notes.basic_api.create(SimplePublicObjectInputForCreate(
            properties={"hs_timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        "hs_note_body": body[:65536]},
            associations=[PublicAssociationsForObject(
                to=PublicObjectId(id=contact_id),
                types=[AssociationSpec(association_category="HUBSPOT_DEFINED",
                                       association_type_id=NOTE_TO_CONTACT)])]))
        return str(note.id)

    def find_note(self, token: str) -> str | None:
        """The id of a note whose body carries ``token`` (HubSpot's search is eventually consistent:
        a note made seconds ago may not be found yet)."""
        found = self.sdk.crm.objects.notes.search_api.do_search(PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="hs_note_body",
                                                       operator="CONTAINS_TOKEN", value=token)])],
            properties=["hs_note_body"], limit=1))
        return str(found.results[0].id) if found.results else None

    def complete(self, outputs: dict[str, dict[str, str]]) -> None:
        """Complete workflow-action callbacks: one call for one, the batch endpoint for several."""
        api = self.sdk.automation.actions.callbacks_api
        if len(outputs) == 1:
            [(callback_id, fields)] = outputs.items()
            api.complete(callback_id, CallbackCompletionRequest(output_fields=fields))
        else:
            api.complete_batch(BatchInputCallbackCompletionBatchRequest(inputs=[
                CallbackCompletionBatchRequest(callback_id=cb, output_fields=fields)
                for cb, fields in outputs.items()]))


def translate(exc: BaseException, what: str, *, hint: str = "") -> ConnectorError:
    """An exception of HubSpot's SDK (or of the HTTP below it) as a connector error: the one place
    vendor errors are read. No status, 408, 423, 429 or 5xx: :class:`PlatformUnavailable` (the job
    is retried later); 404: :class:`RecordNotFound`; any other 4xx: :class:`PlatformRejected`
    with HubSpot's message (never its whole body) and ``hint``, what the user can do about it."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or status >= 500 or status in (408, 423, 429):
        answered = f"answered {status}" if isinstance(status, int) else \
            f"could not be reached ({type(exc).__name__})"
        return PlatformUnavailable(f"HubSpot {answered} for {what}; the job will be retried")
    if status == 404:
        return RecordNotFound(f"HubSpot: not found ({what}){'; ' + hint if hint else ''}")
    message = _message(exc)
    return PlatformRejected(f"HubSpot refused {what}: {status}{' ' + message if message else ''}"
                            f"{'; ' + hint if hint else ''}", status=status)


def _props(props: dict[str, Any] | None) -> dict[str, str]:
    return {k: str(v) for k, v in (props or {}).items() if v is not None and v != ""}


def _method(args: Any) -> str:
    return f"{args[1]} {args[0]}" if len(args) >= 2 else "a call"


def _message(exc: Any) -> str:
    """HubSpot's error message (the body's ``message``), never the whole body."""
    import json

    try:
        return str(json.loads(exc.body).get("message", ""))[:300]
    except (TypeError, ValueError, AttributeError):
        return ""
