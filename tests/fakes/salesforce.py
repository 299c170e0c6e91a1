"""A fake Salesforce org behind the real simple-salesforce client, intercepted with ``responses``
(simple-salesforce builds ``https://`` URLs for the login domain and the instance).

It behaves as the REST API does where Baton depends on it, and refuses what Salesforce refuses:

* the OAuth token endpoint of ``login``, ``test`` and My Domain hosts: the JWT bearer flow (an
  RS256 assertion checked against the connected app's certificate: issuer, audience of the login
  domain, expiry, a known user) and client credentials (HTTP Basic with the app's key and
  secret; refused on ``login``/``test``); errors as ``{"error", "error_description"}``;
* every data call needs a live session (401 ``INVALID_SESSION_ID`` otherwise; :meth:`expire`
  ends them all) and answers with ``Sforce-Limit-Info``;
* SOQL: ``SELECT`` of fields and parent fields (``Account.Name``), ``WHERE`` with ``=``, ``!=``,
  ``IN``, ``AND``, ``OR`` and parentheses, ``ORDER BY``, ``LIMIT``; pages of ``page_size`` with
  ``nextRecordsUrl``; an unknown field is 400 ``INVALID_FIELD``, a malformed query
  ``MALFORMED_QUERY``;
* sObject Collections update and upsert by an external id: up to 200 records, per-record errors
  (``ENTITY_IS_DELETED``, ``CANNOT_UPDATE_CONVERTED_LEAD``, ``INVALID_FIELD`` for a field that does
  not exist or that the integration user may not edit — the permission set — ``MISSING_ARGUMENT``,
  ``INVALID_CROSS_REFERENCE_KEY`` for a ``WhoId`` that is not a live Lead or Contact) with a 200;
* injected trouble: the next calls answered 403 ``REQUEST_LIMIT_EXCEEDED`` or 503, a call whose
  effect lands but whose answer is lost (a worker killed after the write).

Every call is recorded (:attr:`calls`), logins apart in :attr:`logins`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

VERSION = "59.0"
BATON_FIELDS = ("Baton_Email_Subject__c", "Baton_Email_Body__c", "Baton_Recommendations__c",
                "Baton_Reply__c", "Baton_Receipt__c", "Baton_Generated_At__c")
SCHEMA: dict[str, set[str]] = {
    "Lead": {"Id", "FirstName", "LastName", "Name", "Email", "Company", "Title", "Industry", "City",
             "Country", "LeadSource", "HasOptedOutOfEmail", "IsConverted", "ConvertedContactId",
             "LastModifiedById", "Phone", "Status"},
    "Contact": {"Id", "FirstName", "LastName", "Name", "Email", "Title", "Department",
                "MailingCity", "MailingCountry", "HasOptedOutOfEmail", "AccountId",
                "LastModifiedById", "Phone", "IsPersonAccount"},
    "Account": {"Id", "Name", "Industry", "IsPersonAccount", "PersonContactId", "FirstName",
                "LastName", "PersonEmail", "PersonTitle", "PersonMailingCity",
                "PersonMailingCountry", "PersonHasOptedOutOfEmail", "LastModifiedById"},
    "Opportunity": {"Id", "Name", "AccountId", "IsWon", "IsClosed", "StageName", "CloseDate"},
    "OpportunityContactRole": {"Id", "ContactId", "OpportunityId", "IsPrimary"},
    "OpportunityLineItem": {"Id", "OpportunityId", "Product2Id", "Quantity", "UnitPrice"},
    "Product2": {"Id", "Name", "ProductCode", "Description", "IsActive"},
    "PricebookEntry": {"Id", "Product2Id", "Pricebook2Id", "UnitPrice", "IsActive"},
    "Pricebook2": {"Id", "Name", "IsStandard"},
    "Task": {"Id", "WhoId", "WhatId", "Subject", "Description", "Status", "Priority",
             "ActivityDate", "OwnerId", "Baton_Job_Key__c"},
    "User": {"Id", "Username", "Name"},
}
WRITABLE = {"Lead": BATON_FIELDS, "Contact": BATON_FIELDS,
            "Account": tuple(f.replace("__c", "__pc") for f in BATON_FIELDS),
            "Task": ("WhoId", "WhatId", "Subject", "Description", "Status", "Priority",
                     "ActivityDate", "Baton_Job_Key__c")}
RELATIONS = {"ConvertedContact": "Contact"}  # relationship name -> sObject, where they differ
PREFIX = {"Lead": "00Q", "Contact": "003", "Account": "001", "Opportunity": "006",
          "OpportunityContactRole": "00K", "OpportunityLineItem": "00k", "Product2": "01t",
          "PricebookEntry": "01u", "Pricebook2": "01s", "Task": "00T", "User": "005"}


def record_id(id15: str) -> str:
    """An 18-character record id as Salesforce makes it: the 15 characters, then for each group
    of five a letter (A-Z, 0-5) whose bits say which of them are upper case."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, c in enumerate(id15[start:start + 5]) if c.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return id15 + suffix


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(message)


@dataclass
class App:
    """A connected app: its consumer key and secret, and the certificate's key pair."""

    consumer_key: str
    consumer_secret: str
    private_pem: str
    public_key: Any
    scopes: str = "api id"  # the connected app's selected OAuth scopes


def new_app(consumer_key: str = "3MVG9-baton-test", secret: str = "app-secret") -> App:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return App(consumer_key, secret, pem, key.public_key())


def self_signed(app: App) -> str:
    """The certificate an admin uploads to the connected app (PEM)."""
    key = serialization.load_pem_private_key(app.private_pem.encode(), None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "baton")])
    import datetime as dt
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)  # type: ignore[arg-type]
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    query: str = ""  # the query string, decoded (SOQL)


@dataclass
class FakeSalesforce:
    org_id: str = "00D5g000004ABCDEAA"
    instance: str = "https://baton-dev.my.salesforce.com"
    my_domain: str = "baton-dev.my"
    page_size: int = 2000
    daily_limit: int = 15000
    app: App = field(default_factory=new_app)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    api_used: int = 0
    permission_set: bool = True  # the integration user has field-level security on Baton's fields
    fields_deployed: bool = True
    task_key_external: bool = True  # Baton_Job_Key__c deployed as an External ID
    sandbox: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._sessions: set[str] = set()
        self._cursors: dict[str, list[dict[str, Any]]] = {}
        self._faults: list[tuple[str, str, int]] = []  # (method, path regex, status | 0 = lost)
        self.users: dict[str, str] = {}  # username -> user id
        self.integration_user = self.add_user("baton@integration.example")
        self.admin = self.add_user("admin@example.com")
        for name in SCHEMA:
            self.records.setdefault(name, {})

    # -- the org's data ------------------------------------------------------------------------

    def new_id(self, sobject: str) -> str:
        n = next(self._ids)
        return record_id(f"{PREFIX[sobject]}5g{n:010d}")

    def add(self, sobject: str, record_id: str | None = None, **fields: Any) -> str:
        with self._lock:
            rid = record_id or self.new_id(sobject)
            unknown = set(fields) - SCHEMA[sobject] - set(WRITABLE.get(sobject, ()))
            assert not unknown, f"test data: {sobject} has no {unknown}"
            fields.setdefault("LastModifiedById", self.users.get("admin@example.com", ""))
            self.records[sobject][rid] = {"Id": rid, **fields}
            return rid

    def add_user(self, username: str) -> str:
        uid = self.new_id("User")
        self.users[username] = uid
        self.records.setdefault("User", {})[uid] = {"Id": uid, "Username": username}
        return uid

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        return self.records[sobject].get(record_id)

    def delete(self, sobject: str, record_id: str) -> None:
        with self._lock:
            del self.records[sobject][record_id]

    def tasks(self) -> list[dict[str, Any]]:
        return list(self.records["Task"].values())

    def expire(self) -> None:
        """Every session ends (a session timeout, a password reset, an admin's revoke)."""
        with self._lock:
            self._sessions.clear()

    def fail(self, method: str, path: str, status: int, times: int = 1) -> None:
        """The next ``times`` calls matching answer ``status`` (403: REQUEST_LIMIT_EXCEEDED;
        0: the write lands and the connection drops before the answer)."""
        self._faults.extend([(method, path, status)] * times)

    def api_calls(self) -> list[Call]:
        return list(self.calls)

    # -- responses wiring ----------------------------------------------------------------------

    def mock(self) -> responses.RequestsMock:
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        for host in ("https://login.salesforce.com", "https://test.salesforce.com",
                     f"https://{self.my_domain}.salesforce.com"):
            mock.add_callback(responses.POST, f"{host}/services/oauth2/token",
                              callback=self._token_endpoint(host))
        base = re.escape(self.instance)
        for method in (responses.GET, responses.POST, responses.PATCH, responses.DELETE):
            mock.add_callback(method, re.compile(base + r"/services/.*"), callback=self._api)
        return mock

    # -- OAuth -----------------------------------------------------------------------------------

    def _token_endpoint(self, host: str) -> Any:
        def handle(request: Any) -> tuple[int, dict[str, str], str]:
            form = {k: v[0] for k, v in parse_qs(request.body or "").items()}
            grant = form.get("grant_type", "")
            with self._lock:
                if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                    return self._jwt(host, form.get("assertion", ""))
                if grant == "client_credentials":
                    return self._client_credentials(host, request.headers.get("Authorization", ""))
            return _oauth_error("unsupported_grant_type", "grant type not supported")
        return handle

    def _jwt(self, host: str, assertion: str) -> tuple[int, dict[str, str], str]:
        audience = "https://test.salesforce.com" if self.sandbox else "https://login.salesforce.com"
        if host != audience:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        try:
            claims = jwt.decode(assertion, self.app.public_key, algorithms=["RS256"],
                                audience=audience, options={"require": ["exp", "iss", "sub"]})
        except jwt.ExpiredSignatureError:
            return _oauth_error("invalid_grant", "expired authorization code")
        except jwt.InvalidTokenError:
            return _oauth_error("invalid_grant", "invalid assertion")
        if claims["iss"] != self.app.consumer_key:
            return _oauth_error("invalid_client_id", "client identifier invalid")
        if claims["sub"] not in self.users:
            return _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return self._session(self.users[claims["sub"]])

    def _client_credentials(self, host: str, authorization: str) -> tuple[int, dict[str, str], str]:
        if host != f"https://{self.my_domain}.salesforce.com":
            return _oauth_error("invalid_grant", "request not supported on this domain")
        expected = base64.b64encode(f"{self.app.consumer_key}:{self.app.consumer_secret}".encode())
        if authorization != f"Basic {expected.decode()}":
            return _oauth_error("invalid_client", "invalid client credentials")
        return self._session(self.integration_user)

    def _session(self, user: str) -> tuple[int, dict[str, str], str]:
        token = f"00D!{next(self._ids):08d}.session"
        self._sessions.add(token)
        self.logins.append(user)
        return 200, {"Content-Type": "application/json"}, json.dumps({
            "access_token": token, "instance_url": self.instance, "token_type": "Bearer",
            "id": f"https://login.salesforce.com/id/{self.org_id}/{user}",
            "scope": self.app.scopes})

    # -- the REST API ----------------------------------------------------------------------------

    def _api(self, request: Any) -> tuple[int, dict[str, str], str]:
        url = urlparse(request.url)
        path = url.path
        body = json.loads(request.body) if request.body else None
        with self._lock:
            self.calls.append(Call(request.method, path, body,
                                   " ".join(v for vs in parse_qs(url.query).values() for v in vs)))
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if token not in self._sessions:
                return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
            self.api_used += 1
            for i, (method, pattern, status) in enumerate(self._faults):
                if method == request.method and re.search(pattern, path):
                    del self._faults[i]
                    if status == 403:
                        return self._limited(_errors(403, "REQUEST_LIMIT_EXCEEDED",
                                                     "TotalRequests Limit exceeded."))
                    if status == 0:
                        self._route(request.method, path, url.query, body)
                        raise requests.ConnectionError("connection reset after the write")
                    return self._limited(_errors(status, "SERVER_UNAVAILABLE", "try later"))
            try:
                status, payload = self._route(request.method, path, url.query, body)
            except SoqlError as exc:
                return self._limited(_errors(400, exc.code, exc.message))
        return self._limited((status, {"Content-Type": "application/json"},
                              json.dumps(payload) if payload is not None else ""))

    def _limited(self, answer: tuple[int, dict[str, str], str]) -> tuple[int, dict[str, str], str]:
        status, headers, body = answer
        return status, {**headers,
                        "Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_limit}"}, body

    def _route(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any]:
        prefix = f"/services/data/v{VERSION}/"
        if path == "/services/oauth2/userinfo" and method == "GET":
            if not {"id", "openid"} & set(self.app.scopes.split()):
                return 403, [{"errorCode": "INSUFFICIENT_SCOPE",
                              "message": "the access token lacks the id or openid scope"}]
            return 200, {"user_id": self._current_user(), "organization_id": self.org_id,
                         "preferred_username": "baton@integration.example"}
        if not path.startswith(prefix):
            return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        rest = path[len(prefix):]
        if rest == "query/" or rest == "query":
            soql = parse_qs(query).get("q", [""])[0]
            return 200, self._page(self.query(soql))
        if rest.startswith("query/") and method == "GET":
            cursor = rest.split("/", 1)[1]
            if cursor not in self._cursors:
                return 400, [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "invalid query locator"}]
            return 200, self._page(self._cursors.pop(cursor))
        if rest == "composite/sobjects" and method == "PATCH":
            return self._collection_update(body)
        match = re.fullmatch(r"composite/sobjects/(\w+)/(\w+)", rest)
        if match and method == "PATCH":
            return self._collection_upsert(match[1], match[2], body)
        match = re.fullmatch(r"sobjects/(\w+)/describe", rest)
        if match and method == "GET":
            name = match[1]
            if name not in SCHEMA:
                return 404, [{"errorCode": "NOT_FOUND",
                              "message": f"sObject type '{name}' is not supported."}]
            fields = sorted(SCHEMA[name] | (set(WRITABLE.get(name, ())) if self.fields_deployed else set()))
            return 200, {"name": name, "fields": [
                {"name": f, "updateable": f in WRITABLE.get(name, ()) and self.permission_set,
                 "externalId": f == "Baton_Job_Key__c" and self.task_key_external}
                for f in fields]}
        if rest == "limits" and method == "GET":
            return 200, {"DailyApiRequests": {"Max": self.daily_limit,
                                              "Remaining": self.daily_limit - self.api_used}}
        return 404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]

    def _current_user(self) -> str:
        return self.logins[-1] if self.logins else self.integration_user

    def _page(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        head, tail = rows[:self.page_size], rows[self.page_size:]
        page: dict[str, Any] = {"totalSize": len(rows), "done": not tail, "records": head}
        if tail:
            cursor = f"01g5g{next(self._ids):010d}-{self.page_size}"
            self._cursors[cursor] = tail
            page["nextRecordsUrl"] = f"/services/data/v{VERSION}/query/{cursor}"
        return page

    # -- writes ----------------------------------------------------------------------------------

    def _check_collection(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise SoqlError("JSON_PARSER_ERROR", "records: expected an array")
        if set(body) - {"allOrNone", "records"}:
            extra = sorted(set(body) - {"allOrNone", "records"})
            raise SoqlError("JSON_PARSER_ERROR", f"Unrecognized field: {extra}")
        if len(body["records"]) > 200:
            raise SoqlError("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                            "than 200 records into this call")
        return list(body["records"])

    def _writable(self, sobject: str, fields: dict[str, Any]) -> str | None:
        for name in fields:
            if name in SCHEMA[sobject] and name not in WRITABLE.get(sobject, ()):
                if name in ("WhoId", "WhatId", "Subject"):
                    continue
                return (f"Unable to create/update fields: {name}. Please check the security "
                        "settings of this field")
            if name not in SCHEMA[sobject] and not (self.fields_deployed and self.permission_set
                                                   and name in WRITABLE.get(sobject, ())):
                return f"No such column '{name}' on sobject of type {sobject}"
        return None

    def _collection_update(self, body: Any) -> tuple[int, Any]:
        records = self._check_collection(body)
        types = [(r.get("attributes") or {}).get("type") for r in records]
        runs = sum(1 for i, t in enumerate(types) if i == 0 or t != types[i - 1])
        if runs > 10:  # Salesforce processes a type change as a new chunk, ten at most
            raise SoqlError("INVALID_BATCH_REQUEST", "Number of chunks in the request exceeds "
                            "the maximum allowed: 10")
        out = []
        for record in records:
            rid, sobject = record.get("id"), (record.get("attributes") or {}).get("type")
            fields = {k: v for k, v in record.items() if k not in ("attributes", "id")}
            if sobject not in SCHEMA:
                out.append(_failed(None, "INVALID_TYPE", f"sObject type '{sobject}' is not supported"))
                continue
            target = self.records[sobject].get(rid or "")
            if target is None:
                out.append(_failed(rid, "ENTITY_IS_DELETED", "entity is deleted"))
                continue
            if sobject == "Lead" and target.get("IsConverted"):
                out.append(_failed(rid, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"))
                continue
            problem = self._writable(sobject, fields)
            if problem:
                out.append(_failed(rid, "INVALID_FIELD", problem))
                continue
            target.update(fields)
            target["LastModifiedById"] = self._current_user()
            out.append({"id": rid, "success": True, "errors": []})
        return 200, out

    def _collection_upsert(self, sobject: str, key_field: str, body: Any) -> tuple[int, Any]:
        if sobject not in SCHEMA:
            raise SoqlError("NOT_FOUND", "The requested resource does not exist")
        if key_field != "Baton_Job_Key__c" or not self.fields_deployed or \
                not self.task_key_external:
            raise SoqlError("INVALID_FIELD", f"Field {key_field} is not an External ID or "
                            f"indexed field for {sobject}")
        out = []
        for record in self._check_collection(body):
            fields = {k: v for k, v in record.items() if k != "attributes"}
            if (record.get("attributes") or {}).get("type") != sobject:
                out.append(_failed(None, "INVALID_TYPE", "attributes.type does not match the URL"))
                continue
            key = fields.get(key_field)
            if not key:
                out.append(_failed(None, "MISSING_ARGUMENT", f"{key_field} not specified"))
                continue
            problem = self._writable(sobject, fields)
            if problem:
                out.append(_failed(None, "INVALID_FIELD", problem))
                continue
            who = fields.get("WhoId")
            live_lead = who in self.records["Lead"] and not self.records["Lead"][who].get("IsConverted")
            if who and not (live_lead or who in self.records["Contact"]):
                out.append(_failed(None, "INVALID_CROSS_REFERENCE_KEY",
                                   "Name ID: id value of incorrect type or deleted"))
                continue
            existing = [r for r in self.records[sobject].values() if r.get(key_field) == key]
            if existing:
                existing[0].update(fields)
                out.append({"id": existing[0]["Id"], "success": True, "errors": [], "created": False})
            else:
                rid = self.add(sobject, **fields)
                out.append({"id": rid, "success": True, "errors": [], "created": True})
        return 200, out

    # -- SOQL ------------------------------------------------------------------------------------

    def query(self, soql: str) -> list[dict[str, Any]]:
        q = parse_soql(soql)
        sobject = q["from"]
        if sobject not in SCHEMA:
            raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        for name in [*q["fields"], *_where_fields(q["where"]), *(f for f, _ in q["order"])]:
            self._resolve_field(sobject, name)
        rows = [r for r in self.records[sobject].values()
                if q["where"] is None or self._match(sobject, r, q["where"])]
        for name, desc in reversed(q["order"]):
            def key(r: dict[str, Any], n: str = name) -> tuple[bool, str]:
                value = self._value(sobject, r, n)
                return value is None, str(value or "")
            rows.sort(key=key, reverse=desc)
        if q["limit"] is not None:
            rows = rows[:q["limit"]]
        return [self._project(sobject, r, q["fields"]) for r in rows]

    def _resolve_field(self, sobject: str, name: str) -> None:
        parts = name.split(".")
        current = sobject
        for parent in parts[:-1]:
            table = RELATIONS.get(parent, parent)
            if f"{parent}Id" not in SCHEMA[current] or table not in SCHEMA:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{parent}' in "
                                f"field path. No such column '{parent}' on entity '{current}'")
            current = table
        leaf = parts[-1]
        if leaf not in SCHEMA[current] and not (self.fields_deployed and leaf in WRITABLE.get(current, ())):
            raise SoqlError("INVALID_FIELD", f"No such column '{leaf}' on entity '{current}'")

    def _value(self, sobject: str, record: dict[str, Any], name: str) -> Any:
        row: dict[str, Any] | None = record
        parts = name.split(".")
        for parent in parts[:-1]:
            linked = row.get(f"{parent}Id") if row else None
            row = self.records[RELATIONS.get(parent, parent)].get(linked) if linked else None
            if row is None:
                return None
        return row.get(parts[-1]) if row else None

    def _project(self, sobject: str, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        url = f"/services/data/v{VERSION}/sobjects/{sobject}/{record['Id']}"
        out: dict[str, Any] = {"attributes": {"type": sobject, "url": url}}
        for name in fields:
            parts = name.split(".")
            if len(parts) == 1:
                out[name] = record.get(name)
                continue
            parent = parts[0]
            table = RELATIONS.get(parent, parent)
            linked = record.get(f"{parent}Id")
            prow = self.records[table].get(linked or "") if linked else None
            if prow is None:
                out[parent] = None
                continue
            nested = out.setdefault(parent, {"attributes": {"type": table}})
            nested.update({k: v for k, v in self._project(table, prow, [".".join(parts[1:])]).items()
                           if k != "attributes"})
        return out

    def _match(self, sobject: str, record: dict[str, Any], cond: Any) -> bool:
        op = cond[0]
        if op == "and":
            return all(self._match(sobject, record, c) for c in cond[1])
        if op == "or":
            return any(self._match(sobject, record, c) for c in cond[1])
        _, name, value = cond
        actual = self._value(sobject, record, name)
        if op == "in":
            return bool(actual in value)
        if op == "=":
            return bool(actual == value or (value is False and actual is None))
        if op == "!=":
            return bool(actual != value)
        raise SoqlError("MALFORMED_QUERY", f"unsupported operator {op}")


def _failed(rid: str | None, code: str, message: str) -> dict[str, Any]:
    return {"id": rid, "success": False, "errors": [{"statusCode": code, "message": message,
                                                     "fields": []}]}


def _errors(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(
        [{"message": message, "errorCode": code}])


def _oauth_error(code: str, message: str) -> tuple[int, dict[str, str], str]:
    return 400, {"Content-Type": "application/json"}, json.dumps(
        {"error": code, "error_description": message})


# -- a SOQL subset parser ------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)|"
                   r"(?P<name>[A-Za-z_][\w.]*)|(?P<op>!=|<=|>=|[=<>(),*]))")


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SoqlError("MALFORMED_QUERY", f"unexpected character at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        yield kind, m.group(kind)


def parse_soql(text: str) -> dict[str, Any]:
    tokens = list(_tokens(text))
    pos = 0

    def peek(upper: bool = True) -> str:
        if pos >= len(tokens):
            return ""
        return tokens[pos][1].upper() if upper else tokens[pos][1]

    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        tok = tokens[pos]
        if expected is not None and tok[1].upper() != expected:
            raise SoqlError("MALFORMED_QUERY", f"expected {expected}, got {tok[1]!r}")
        pos += 1
        return tok

    take("SELECT")
    fields = []
    while True:
        kind, name = take()
        if kind != "name" or name.upper() in ("FIELDS", "FROM"):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token in the field list: {name!r}")
        fields.append(name)
        if peek() != ",":
            break
        take(",")
    take("FROM")
    kind, sobject = take()
    if kind != "name":
        raise SoqlError("MALFORMED_QUERY", "FROM needs an sObject type")

    def value() -> Any:
        kind, tok = take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", tok[1:-1])
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if tok.upper() in ("TRUE", "FALSE"):
            return tok.upper() == "TRUE"
        if tok.upper() == "NULL":
            return None
        raise SoqlError("MALFORMED_QUERY", f"expected a value, got {tok!r}")

    def condition() -> Any:
        if peek() == "(":
            take("(")
            inner = disjunction()
            take(")")
            return inner
        kind, name = take()
        if kind != "name":
            raise SoqlError("MALFORMED_QUERY", f"expected a field, got {name!r}")
        op = take()[1].upper()
        if op == "IN":
            take("(")
            values = [value()]
            while peek() == ",":
                take(",")
                values.append(value())
            take(")")
            return ("in", name, values)
        if op in ("=", "!="):
            return (op, name, value())
        raise SoqlError("MALFORMED_QUERY", f"unsupported operator {op!r}")

    def conjunction() -> Any:
        parts = [condition()]
        while peek() == "AND":
            take("AND")
            parts.append(condition())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def disjunction() -> Any:
        parts = [conjunction()]
        while peek() == "OR":
            take("OR")
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else ("or", parts)

    where = None
    if peek() == "WHERE":
        take("WHERE")
        where = disjunction()
    order: list[tuple[str, bool]] = []
    if peek() == "ORDER":
        take("ORDER")
        take("BY")
        while True:
            order.append((take()[1], False))
            if peek() in ("ASC", "DESC"):
                order[-1] = (order[-1][0], take()[1].upper() == "DESC")
            if peek() != ",":
                break
            take(",")
    limit = None
    if peek() == "LIMIT":
        take("LIMIT")
        limit = int(take()[1])
    if pos != len(tokens):
        raise SoqlError("MALFORMED_QUERY", f"unexpected token {tokens[pos][1]!r}")
    return {"fields": fields, "from": sobject, "where": where, "order": order, "limit": limit}


def _where_fields(cond: Any) -> list[str]:
    if cond is None:
        return []
    if cond[0] in ("and", "or"):
        return [f for c in cond[1] for f in _where_fields(c)]
    return [cond[1]]
