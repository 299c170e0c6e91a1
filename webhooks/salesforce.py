"""Salesforce outbound messages (SOAP ``notifications``).

They carry no signature, so a message is accepted only when its ``OrganizationId`` is allowlisted
(``BATON_SALESFORCE_ORG_IDS``), and, when configured, it came to the secret path
``/salesforce/outbound/<token>`` (``BATON_SALESFORCE_PATH_TOKEN``) from an allowlisted network
(``BATON_SALESFORCE_SOURCE_CIDRS``). Up to 100 notifications per message; each is deduped on its
notification ``Id``. The answer is the SOAP ``<Ack>true</Ack>`` that stops Salesforce's retries.
Errors are SOAP faults with a 4xx (503 when the inbox cannot commit); Salesforce retries anything
but an Ack for up to 24 hours, and its outbound-message queue shows the fault's reason.
XML is parsed with defusedxml: no DTDs, no entity expansion, no external entities.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from connectors.http import ApiError, BadRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from core.jobs.lifecycle import NewJob
from core.retention import subject_for
from webhooks.common import client_address, raw_body, record, services

blueprint = Blueprint("salesforce", __name__)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OM = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACK = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}">'
       f'<soapenv:Body><notificationsResponse xmlns="{OM}"><Ack>true</Ack>'
       "</notificationsResponse></soapenv:Body></soapenv:Envelope>")


def soap_fault(exc: ApiError) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}">'
            "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Client</faultcode>"
            f"<faultstring>{escape(exc.reason)}</faultstring></soapenv:Fault></soapenv:Body>"
            "</soapenv:Envelope>")
    return Response(body, status=exc.status, mimetype="text/xml")


def _org15(org_id: str) -> str:
    return org_id.strip()[:15]


def _check_source() -> None:
    settings = services().settings
    cidrs = [c.strip() for c in settings.salesforce_source_cidrs.split(",") if c.strip()]
    if not cidrs:
        return
    try:
        ip = ipaddress.ip_address(_without_port(client_address()))
    except ValueError:
        raise Unauthorized("source address not allowed") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    if not any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs):
        raise Unauthorized("source address not allowed")


def _without_port(addr: str) -> str:
    """``10.0.0.5:1234`` -> ``10.0.0.5``; ``[2001:db8::1]:443`` -> ``2001:db8::1``."""
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    return addr.split(":", 1)[0] if addr.count(":") == 1 else addr


def _text(element: Any, tag: str) -> str:
    found = element.find(f"{{{OM}}}{tag}")
    return (found.text or "").strip() if found is not None else ""


def parse(body: bytes) -> tuple[str, str, list[dict[str, Any]]]:
    """(OrganizationId, ActionId, notifications) of an outbound message."""
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise BadRequest(f"forbidden XML construct ({type(exc).__name__})") from None
    except ElementTree.ParseError as exc:
        raise BadRequest(f"malformed XML: {exc}") from None
    except LookupError as exc:  # expat on an XML declaration naming an unknown encoding
        raise BadRequest(f"malformed XML: {exc}") from None
    notifications = root.find(f"{{{SOAP}}}Body/{{{OM}}}notifications")
    if notifications is None:
        raise BadRequest("not an outbound message: no soapenv:Body/notifications")
    org, action = _text(notifications, "OrganizationId"), _text(notifications, "ActionId")
    if not org:
        raise BadRequest("OrganizationId is missing")
    items = []
    for n in notifications.findall(f"{{{OM}}}Notification"):
        notification_id = _text(n, "Id")
        sobject = n.find(f"{{{OM}}}sObject")
        if not notification_id or sobject is None:
            raise BadRequest("a Notification lacks its Id or sObject")
        fields = {child.tag.split("}")[-1]: (child.text or "") for child in sobject}
        sobject_type = sobject.get(f"{{{XSI}}}type", "").split(":")[-1]
        items.append({"notification_id": notification_id, "sobject_type": sobject_type,
                      "fields": fields})
    if not 1 <= len(items) <= 100:
        raise BadRequest(f"expected 1 to 100 notifications, got {len(items)}")
    return org, action, items


def _outbound(token: str | None) -> Response:
    try:
        settings = services().settings
        expected = settings.salesforce_path_token.get_secret_value()
        if expected and not hmac.compare_digest((token or "").encode(), expected.encode()):
            raise Unauthorized("wrong or missing path token")
        _check_source()
        if request.mimetype not in ("text/xml", "application/soap+xml"):
            raise UnsupportedMediaType(f"expected text/xml, got {request.mimetype or 'none'}")
        org, action, items = parse(raw_body())
        allowed = {_org15(o) for o in settings.salesforce_org_ids.split(",") if o.strip()}
        if _org15(org) not in allowed:
            raise Unauthorized("OrganizationId is not allowlisted (BATON_SALESFORCE_ORG_IDS)")
        record("salesforce", [NewJob(
            external_id=f"{_org15(org)}:{item['notification_id']}", kind="salesforce.notification",
            tenant=f"salesforce:{_org15(org)}", payload={**item, "action_id": action},
            subject=subject_for(str(item["fields"]["Id"])) if item["fields"].get("Id") else None,
        ) for item in items])
    except ApiError as exc:
        return soap_fault(exc)
    except RequestEntityTooLarge:  # Salesforce reads a SOAP fault, not JSON
        return soap_fault(PayloadTooLarge(
            f"body larger than {services().settings.max_body_bytes} bytes"))
    return Response(ACK, status=200, mimetype="text/xml")


@blueprint.post("/salesforce/outbound")
def outbound() -> Response:
    return _outbound(None)


@blueprint.post("/salesforce/outbound/<token>")
def outbound_with_token(token: str) -> Response:
    return _outbound(token)
