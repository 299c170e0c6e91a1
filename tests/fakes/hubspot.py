"""A loopback HubSpot API that behaves like the real one on the wire, for the real hubspot-api-client.

It keeps one data set per portal (contacts, companies, deals, line items, associations, notes,
properties), accepts only bearer tokens it issued (private-app tokens, or OAuth tokens from its
token endpoint, which expire), completes workflow-action callbacks, registers webhook subscriptions
and action definitions for a developer key, and records every request. ``inject`` makes the next
requests fail with 429 (with ``Retry-After``) or 5xx.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.loopback import JsonHandler, LoopbackServer

NOW = "2026-11-28T00:00:00.000Z"
IN_FLIGHT = 0.1
OBJECT_TYPES = ("contacts", "companies", "deals", "line_items", "notes", "products")


@dataclass
class Portal:
    objects: dict[str, dict[str, dict[str, str]]] = field(
        default_factory=lambda: {t: {} for t in OBJECT_TYPES})
    associations: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    note_links: dict[str, list[str]] = field(default_factory=dict)  # note id -> contact ids
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, kind: str, oid: str, **props: str) -> str:
        self.objects[kind][oid] = dict(props)
        return oid

    def link(self, from_kind: str, from_id: str, to_kind: str, to_id: str) -> None:
        self.associations.setdefault((from_kind, from_id, to_kind), []).append(to_id)
        self.associations.setdefault((to_kind, to_id, from_kind), []).append(from_id)


@dataclass
class Recorded:
    at: float
    method: str
    path: str
    portal: int | None
    body: Any


def _object(oid: str, props: dict[str, str], wanted: list[str] | None = None) -> dict[str, Any]:
    shown = props if wanted is None else {k: props.get(k) for k in wanted}
    return {"id": oid, "properties": shown, "createdAt": NOW, "updatedAt": NOW, "archived": False}


# A portal's built-in contact properties (the ones Baton reads or a test seeds); Baton's own exist
# only once created (``baton hubspot setup`` or the OAuth callback)
UNIQUE_PROPERTIES = {"contacts": ("email", "hs_object_id")}
CONTACT_PROPERTIES = {"firstname", "lastname", "email", "phone", "mobilephone", "company",
                      "jobtitle", "industry", "city", "state", "zip", "country", "address",
                      "lifecyclestage", "hs_language", "hs_email_optout", "website", "salutation",
                      "hs_object_id", "createdate", "lastmodifieddate"}
ALL_SCOPES = frozenset({"oauth", "crm.objects.contacts.read", "crm.objects.contacts.write",
                        "crm.objects.companies.read", "crm.objects.deals.read",
                        "crm.objects.line_items.read", "e-commerce", "crm.schemas.contacts.read",
                        "crm.schemas.contacts.write", "automation"})
NOTE_TO_CONTACT = 202
REDIRECT_URI = "https://b.example/hubspot/oauth/callback"


def required_scope(method: str, path: str) -> str | None:
    """The scope HubSpot requires for a call (None: no scope needed)."""
    if path.startswith("/automation/v4/actions/callbacks"):
        return "automation"
    if path.startswith("/crm/v3/properties/"):
        return "crm.schemas.contacts.write" if method != "GET" else "crm.schemas.contacts.read"
    if path.startswith("/crm/v3/objects/notes"):
        return "crm.objects.contacts.write" if not path.endswith("/search") \
            else "crm.objects.contacts.read"
    for kind, scope in (("contacts", "crm.objects.contacts"), ("companies", "crm.objects.companies"),
                        ("deals", "crm.objects.deals"), ("line_items", "crm.objects.line_items")):
        if path.startswith((f"/crm/v3/objects/{kind}", f"/crm/v4/associations/{kind}")):
            write = method in ("PATCH", "POST") and not path.endswith(("/batch/read", "/search"))
            return f"{scope}.{'write' if write else 'read'}"
    if path.startswith("/crm/v3/objects/products"):
        return "e-commerce"
    return None


DEFINITION_PATCH_FIELDS = {"actionUrl", "executionRules", "inputFieldDependencies", "inputFields",
                           "labels", "objectRequestOptions", "objectTypes", "outputFields",
                           "published"}


class FakeHubSpot(LoopbackServer):
    def __init__(self, *, client_id: str = "client-1", client_secret: str = "app-secret",
                 developer_key: str = "dev-key", token_ttl: int = 1800) -> None:
        self.portals: dict[int, Portal] = {}
        self.tokens: dict[str, tuple[int, float]] = {}  # access token -> (portal, expires at)
        self.scopes: dict[str, frozenset[str]] = {}  # access token -> its scopes
        self.code_scopes: dict[str, frozenset[str]] = {}
        self.redirect_uri = REDIRECT_URI  # the app's registered redirect URL
        self.search_lag = 0.0  # seconds before a new note is found by search (eventual consistency)
        self.indexed_at: dict[str, float] = {}  # note id -> when search finds it
        self.refresh_tokens: dict[str, int] = {}
        self.codes: dict[str, int] = {}  # authorization code -> portal
        self.client_id, self.client_secret, self.developer_key = client_id, client_secret, developer_key
        self.token_ttl = token_ttl
        self.requests: list[Recorded] = []
        self.completions: Counter[str] = Counter()
        self.completed: dict[str, dict[str, str]] = {}
        self.completion_calls: list[list[str]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.webhook_settings: dict[str, Any] = {}
        self.definitions: list[dict[str, Any]] = []
        self.refreshes = 0
        self.failures: list[tuple[int, float | None, str]] = []  # (status, retry-after s, path re)
        self.stalls: list[tuple[threading.Event, str]] = []  # answer only once the event is set
        self.refused_callbacks: set[str] = set()  # expired or unknown to HubSpot
        self.refusal_status = 400  # what a refused completion answers
        # A 429 with Retry-After blocks the portal; requests that arrive inside the block count as
        # early, except in its first IN_FLIGHT seconds (sent before the client could see the 429).
        self.blocked_from = self.blocked_until = 0.0
        self.early = 0
        self.lock = threading.RLock()
        self._ids = itertools.count(9000)
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def do_PATCH(self) -> None:
                fake._serve(self, "PATCH")

            def do_PUT(self) -> None:
                fake._serve(self, "PUT")

        super().__init__(Handler)

    # -- set-up helpers for tests -------------------------------------------------------------

    def portal(self, portal_id: int) -> Portal:
        return self.portals.setdefault(portal_id, Portal())

    def private_app(self, portal_id: int, token: str,
                    scopes: frozenset[str] = ALL_SCOPES) -> None:
        self.portal(portal_id)
        self.tokens[token] = (portal_id, float("inf"))
        self.scopes[token] = scopes

    def authorization_code(self, portal_id: int, scopes: frozenset[str] = ALL_SCOPES) -> str:
        code = f"code-{next(self._ids)}"
        self.portal(portal_id)
        self.codes[code] = portal_id
        self.code_scopes[code] = scopes
        return code

    def create_baton_properties(self, portal_id: int) -> None:
        """What ``baton hubspot setup`` leaves in a portal: the Baton contact properties."""
        from connectors.hubspot.crm import PROPERTIES

        for name, (label, type_, field_type) in PROPERTIES.items():
            self.portal(portal_id).properties[name] = {
                "name": name, "label": label, "type": type_, "fieldType": field_type,
                "groupName": "baton"}

    def expire(self, token: str) -> None:
        portal, _ = self.tokens[token]
        self.tokens[token] = (portal, 0.0)

    def inject(self, status: int, count: int, retry_after: float | None = None,
               path: str = ".*") -> None:
        """The next ``count`` requests whose path matches ``path`` fail with ``status``."""
        with self.lock:
            self.failures.extend([(status, retry_after, path)] * count)

    def stall(self, count: int, path: str = ".*") -> threading.Event:
        """The next ``count`` requests whose path matches ``path`` get no answer until the
        returned event is set (a hung HubSpot)."""
        release = threading.Event()
        with self.lock:
            self.stalls.extend([(release, path)] * count)
        return release

    def notes_of(self, portal_id: int, contact_id: str) -> list[dict[str, str]]:
        p = self.portal(portal_id)
        return [p.objects["notes"][n] for n, cs in p.note_links.items() if contact_id in cs]

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # -- the wire ------------------------------------------------------------------------------

    def _serve(self, h: JsonHandler, method: str) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        ctype = h.headers.get("content-type", "")
        if "x-www-form-urlencoded" in ctype:
            body: Any = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = json.loads(raw) if raw else None
        query = parse_qs(url.query)
        with self.lock:
            now = time.time()
            if self.blocked_from <= now < self.blocked_until:
                self.early += 1
            portal = self._portal_of(h.headers.get("authorization", ""))
            self.requests.append(Recorded(now, method, url.path, portal, body))
            stall = next((s for s in self.stalls if re.fullmatch(s[1], url.path)), None)
            if stall is not None:
                self.stalls.remove(stall)
            failure = next((f for f in self.failures if re.fullmatch(f[2], url.path)), None)
            if failure is not None:
                self.failures.remove(failure)
                status, retry_after, _ = failure
                headers = {}
                if retry_after is not None:
                    headers["Retry-After"] = str(int(retry_after)) if retry_after >= 1 \
                        else str(retry_after)
                    if now >= self.blocked_until:
                        self.blocked_from = now + IN_FLIGHT
                    self.blocked_until = max(self.blocked_until, now + retry_after)
                err = {"status": "error", "message": "You have reached your ten_secondly_rolling "
                       "limit.", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING",
                       "correlationId": "c"} if status == 429 else {"status": "error",
                                                                    "message": "internal"}
                h.send_json(status, err, headers)
                return
        if stall is not None:
            stall[0].wait(30)  # hung: the client's timeout, not this, should end the wait
        try:
            status, reply = self._route(method, url.path, query, body, portal,
                                        h.headers.get("authorization", ""))
        except KeyError as exc:
            status, reply = 404, {"status": "error", "message": f"not found: {exc}",
                                  "category": "OBJECT_NOT_FOUND"}
        if status == 204:
            h.send_response(204)
            h.send_header("content-length", "0")
            h.end_headers()
            return
        h.send_json(status, reply)

    def _portal_of(self, authorization: str) -> int | None:
        scheme, _, token = authorization.partition(" ")
        found = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None or found[1] < time.time():
            return None
        return found[0]

    @staticmethod
    def _token_of(authorization: str) -> str:
        return authorization.partition(" ")[2].strip()

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any,
               portal: int | None, token_header: str = "") -> tuple[int, Any]:
        if path == "/oauth/v1/token" and method == "POST":
            return self._token(body)
        if m := re.fullmatch(r"/oauth/v1/access-tokens/([^/]+)", path):
            found = self.tokens.get(m[1])
            if found is None:
                return 404, {"status": "error", "message": "unknown token"}
            return 200, {"token": m[1], "user": "u@example.com", "hub_domain": "x.example.com",
                         "scopes": ["crm.objects.contacts.write"], "hub_id": found[0],
                         "app_id": 42, "expires_in": 1800, "user_id": 1, "token_type": "access"}
        if path.startswith(("/webhooks/v3/", "/automation/v4/actions/")) and \
                not path.startswith("/automation/v4/actions/callbacks"):
            if query.get("hapikey", [""])[0] != self.developer_key:
                return 401, {"status": "error", "message": "bad developer API key"}
            return self._developer(method, path, body)
        if portal is None:
            return 401, {"status": "error", "message": "Authentication credentials not found.",
                         "category": "INVALID_AUTHENTICATION"}
        scope = required_scope(method, path)
        if scope is not None and scope not in self.scopes.get(self._token_of(token_header), ALL_SCOPES):
            return 403, {"status": "error", "category": "MISSING_SCOPES",
                         "message": "This app hasn't been granted all required scopes to make "
                                    "this call.", "errors": [{"context": {"requiredScopes": [scope]}}]}
        return self._crm(method, path, query, body, self.portal(portal))

    def _token(self, form: dict[str, str]) -> tuple[int, Any]:
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"}
        with self.lock:
            if form.get("grant_type") == "authorization_code":
                if form.get("redirect_uri") != self.redirect_uri:  # as HubSpot: must match
                    return 400, {"status": "BAD_REDIRECT_URI",
                                 "message": "redirect_uri does not match the app's"}
                code = form.get("code", "")
                portal = self.codes.pop(code, None)
                granted = self.code_scopes.pop(code, ALL_SCOPES)
            elif form.get("grant_type") == "refresh_token":
                portal = self.refresh_tokens.get(form.get("refresh_token", ""))
                granted = ALL_SCOPES
                self.refreshes += 1
            else:
                return 400, {"status": "BAD_GRANT_TYPE", "message": "unknown grant type"}
            if portal is None:
                return 400, {"status": "BAD_AUTH_CODE", "message": "code or token not valid"}
            access, refresh = f"at-{next(self._ids)}", form.get("refresh_token") or f"rt-{next(self._ids)}"
            self.tokens[access] = (portal, time.time() + self.token_ttl)
            self.scopes[access] = granted
            self.refresh_tokens[refresh] = portal
        return 200, {"access_token": access, "refresh_token": refresh, "expires_in": self.token_ttl,
                     "token_type": "bearer"}

    def _developer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if re.fullmatch(r"/webhooks/v3/\d+/subscriptions", path) and method == "GET":
            return 200, {"results": self.subscriptions}
        if re.fullmatch(r"/automation/v4/actions/\d+", path) and method == "GET":
            return 200, {"results": self.definitions}
        if re.fullmatch(r"/webhooks/v3/\d+/subscriptions", path) and method == "POST":
            sub = {"id": str(next(self._ids)), "createdAt": NOW, **body}
            self.subscriptions.append(sub)
            return 201, sub
        if re.fullmatch(r"/webhooks/v3/\d+/settings", path) and method == "PUT":
            self.webhook_settings = {**body, "createdAt": NOW}
            return 200, self.webhook_settings
        if re.fullmatch(r"/automation/v4/actions/\d+", path) and method == "POST":
            definition = {"id": str(next(self._ids)), "revisionId": "1", **body}
            self.definitions.append(definition)
            return 200, definition
        if m := re.fullmatch(r"/automation/v4/actions/\d+/(\d+)", path):
            found = next((d for d in self.definitions if d["id"] == m.group(1)), None)
            if found is None:
                return 404, {"status": "error", "message": "definition not found"}
            if method == "PATCH":
                unknown = set(body) - DEFINITION_PATCH_FIELDS
                if unknown:  # as HubSpot: a patch carries only what may change
                    return 400, {"status": "error",
                                 "message": f"Unrecognized field(s): {sorted(unknown)}"}
                found.update(body)
                found["revisionId"] = str(int(found["revisionId"]) + 1)
            return 200, found
        raise KeyError(path)

    def _crm(self, method: str, path: str, query: dict[str, list[str]], body: Any,
             p: Portal) -> tuple[int, Any]:
        if m := re.fullmatch(r"/automation/v4/actions/callbacks/([^/]+)/complete", path):
            return self._complete([(m[1], body["outputFields"])])
        if path == "/automation/v4/actions/callbacks/complete":
            return self._complete([(i["callbackId"], i["outputFields"]) for i in body["inputs"]])
        if (m := re.fullmatch(r"/crm/v3/objects/(\w+)/([^/]+)", path)) and method == "GET" \
                and query.get("idProperty"):
            # as HubSpot: a record by a unique property (email for contacts), case-insensitive
            prop, key = query["idProperty"][0], unquote(m[2])
            if prop not in UNIQUE_PROPERTIES.get(m[1], ()):
                return 400, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": f"Property {prop} is not a unique identifier"}
            oid = next((i for i, o in p.objects[m[1]].items()
                        if o.get(prop, "").casefold() == key.casefold()), None)
            if oid is None:
                return 404, {"status": "error", "message": "resource not found",
                             "category": "OBJECT_NOT_FOUND"}
            wanted = [w for v in query.get("properties", []) for w in v.split(",")]
            return 200, _object(oid, p.objects[m[1]][oid], wanted or None)
        if m := re.fullmatch(r"/crm/v3/objects/(\w+)/(\d+)", path):
            kind, oid = m[1], m[2]
            props = p.objects[kind][oid]
            if method == "PATCH":
                known = CONTACT_PROPERTIES | set(p.properties) | set(props) if kind == "contacts" \
                    else set(body["properties"])
                unknown = sorted(set(body["properties"]) - known)
                if unknown:  # as HubSpot: the whole update is refused
                    return 400, {"status": "error", "category": "VALIDATION_ERROR",
                                 "message": "Property values were not valid: " + json.dumps([
                                     {"isValid": False, "name": n, "error": "PROPERTY_DOESNT_EXIST",
                                      "message": f'Property "{n}" does not exist'} for n in unknown])}
                props.update(body["properties"])
                return 200, _object(oid, props)
            wanted = [w for v in query.get("properties", []) for w in v.split(",")]
            reply = _object(oid, props, wanted or None)
            assoc = [a for v in query.get("associations", []) for a in v.split(",")]
            if assoc:
                # as HubSpot: an associated id once per association label (the labelled type
                # and the "unlabeled" one)
                reply["associations"] = {
                    t: {"results": [{"id": i, "type": f"{kind[:-1]}_to_{t[:-1]}{label}"}
                                    for i in p.associations.get((kind, oid, t), [])
                                    for label in ("", "_unlabeled")]}
                    for t in assoc if p.associations.get((kind, oid, t))}
            return 200, reply
        if (m := re.fullmatch(r"/crm/v3/objects/(\w+)", path)) and method == "GET":
            listed = [w for v in query.get("properties", []) for w in v.split(",")]
            limit = int(query.get("limit", ["10"])[0])
            items = list(p.objects[m[1]].items())[:limit]
            return 200, {"results": [_object(i, o, listed or None) for i, o in items]}
        if m := re.fullmatch(r"/crm/v3/objects/(\w+)/batch/read", path):
            objects = p.objects[m[1]]
            results = [_object(i["id"], objects[i["id"]], body.get("properties") or None)
                       for i in body["inputs"]
                       if i["id"] in objects]
            missing = [i["id"] for i in body["inputs"] if i["id"] not in objects]
            reply = {"status": "COMPLETE", "results": results, "startedAt": NOW, "completedAt": NOW}
            if missing:  # as HubSpot: 207 with the ids it could not read
                return 207, {**reply, "numErrors": 1, "errors": [{
                    "status": "error", "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some objects, they may be deleted or not exist.",
                    "context": {"ids": missing}}]}
            return 200, reply
        if m := re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/batch/read", path):
            results = [{"from": {"id": i["id"]},
                        "to": [{"toObjectId": int(t), "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 20, "label": None}]}
                               for t in p.associations.get((m[1], i["id"], m[2]), [])]}
                       for i in body["inputs"] if p.associations.get((m[1], i["id"], m[2]))]
            return 200, {"status": "COMPLETE", "results": results, "startedAt": NOW,
                         "completedAt": NOW}
        if path == "/crm/v3/objects/notes" and method == "POST":
            if not body["properties"].get("hs_timestamp"):
                return 400, {"status": "error", "category": "VALIDATION_ERROR",
                             "message": "hs_timestamp is required"}
            for assoc in body.get("associations") or []:
                types = [(t.get("associationCategory"), t.get("associationTypeId"))
                         for t in assoc.get("types", [])]
                if ("HUBSPOT_DEFINED", NOTE_TO_CONTACT) not in types or \
                        assoc["to"]["id"] not in p.objects["contacts"]:
                    return 400, {"status": "error", "category": "VALIDATION_ERROR",
                                 "message": f"invalid association {types} to {assoc['to']['id']}"}
            oid = str(next(self._ids))
            p.objects["notes"][oid] = dict(body["properties"])
            p.note_links[oid] = [a["to"]["id"] for a in body.get("associations") or []]
            self.indexed_at[oid] = time.time() + self.search_lag
            return 201, _object(oid, p.objects["notes"][oid])
        if path == "/crm/v3/objects/notes/search":
            [flt] = body["filterGroups"][0]["filters"]
            now = time.time()  # search is eventually consistent: new notes show up later
            hits = [_object(i, n) for i, n in p.objects["notes"].items()
                    if flt["value"] in n.get(flt["propertyName"], "")
                    and self.indexed_at.get(i, 0.0) <= now]
            return 200, {"total": len(hits), "results": hits}
        if re.fullmatch(r"/crm/v3/properties/(\w+)", path) and method == "GET":
            return 200, {"results": list(p.properties.values())}
        if m := re.fullmatch(r"/crm/v3/properties/(\w+)/groups", path):
            if body["name"] in p.groups:
                return 409, {"status": "error", "message": "group exists", "category": "CONFLICT"}
            p.groups[body["name"]] = {**body, "archived": False}
            return 201, p.groups[body["name"]]
        if m := re.fullmatch(r"/crm/v3/properties/(\w+)/batch/create", path):
            results = []
            for prop in body["inputs"]:
                p.properties[prop["name"]] = {
                    "description": "", "options": [], "createdAt": NOW, "updatedAt": NOW,
                    "hidden": False, "formField": False, "calculated": False,
                    "externalOptions": False, "hasUniqueValue": False, "archived": False, **prop,
                    "modificationMetadata": {"archivable": True, "readOnlyDefinition": False,
                                             "readOnlyValue": False}}
                results.append(p.properties[prop["name"]])
            return 201, {"status": "COMPLETE", "results": results, "startedAt": NOW,
                         "completedAt": NOW}
        raise KeyError(path)

    def _complete(self, items: list[tuple[str, dict[str, str]]]) -> tuple[int, Any]:
        """As HubSpot: an expired, unknown or already completed callbackId is refused, and a
        batch holding one is refused whole."""
        with self.lock:
            self.completion_calls.append([cb for cb, _ in items])
            bad = [cb for cb, _ in items if cb in self.refused_callbacks or self.completions[cb]]
            if bad:
                return self.refusal_status, {"status": "error", "category": "VALIDATION_ERROR",
                                             "message": f"Invalid callbackIds: {bad}"}
            for cb, outputs in items:
                self.completions[cb] += 1
                self.completed[cb] = outputs
            return 204, None
