"""Baton's Salesforce metadata as an SFDX source-format project (``sf project deploy start``).

Rendered by ``baton manifests render`` into ``<out>/salesforce/``:

* ``sfdx-project.json``;
* the fields Baton writes on Lead and Contact (``Baton_Email_Subject__c`` and its kin; a Person
  Account shows Contact's as ``__pc``) and the Task's ``Baton_Job_Key__c`` (an External ID under
  ``objects/Activity/``: the key a retried job upserts its Task by);
* the ``Baton_Integration`` permission set (field-level security on those fields: without it
  Salesforce refuses Baton's writes with ``INVALID_FIELD``; Activity fields are granted as
  ``Task.`` and ``Event.``) and ``Baton_Flow_Callout`` (the Named Credential's principal, for the
  users whose Flows call Baton);
* the External Credential and Named Credential ``Baton`` (the API key is not deployable: the admin
  sets it on the principal after the deploy, see the README) and the External Service
  registration ``Baton`` from Baton's OpenAPI document;
* the outbound messages ``Baton_Lead_Email`` and ``Baton_Contact_Email`` to
  ``<base_url>/salesforce/outbound``, sent as the integration user given at render time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

API_VERSION = "59.0"
ROOT = Path("force-app/main/default")
NS = "http://soap.sforce.com/2006/04/metadata"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str  # Text, LongTextArea, DateTime
    length: int | None = None
    description: str = ""


RECORD_FIELDS = (
    Field("Baton_Email_Subject__c", "Baton Email Subject", "Text", 255,
          "The subject of the email Baton drafted for this person."),
    Field("Baton_Email_Body__c", "Baton Email Body", "LongTextArea", 32768,
          "The body of the email Baton drafted for this person."),
    Field("Baton_Recommendations__c", "Baton Recommendations", "LongTextArea", 32768,
          "Products Baton recommends, one per line, with the reason."),
    Field("Baton_Reply__c", "Baton Reply", "LongTextArea", 32768,
          "A support reply Baton drafted."),
    Field("Baton_Receipt__c", "Baton Receipt", "Text", 64,
          "The receipt of the generation: which model, why, its cost (baton receipts show)."),
    Field("Baton_Generated_At__c", "Baton Generated At", "DateTime", None,
          "When Baton wrote these fields."),
)
TASK_KEY = Field("Baton_Job_Key__c", "Baton Job Key", "Text", 255,
                 "The Baton job that wrote this Task: a retried job updates it, never a second one.")
OUTBOUND_FIELDS = ("Id", "LastModifiedById")  # Baton reads the rest itself, by SOQL


def _xml(root: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">\n{body}</{root}>\n')


def _tags(values: dict[str, Any], indent: int = 4) -> str:
    pad = " " * indent
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(f"{pad}<{key}>{escape(str(value))}</{key}>\n")
    return "".join(out)


def field_xml(field: Field, *, external_id: bool = False) -> str:
    values: dict[str, Any] = {"fullName": field.name}
    if external_id:
        values["caseSensitive"] = True
    values |= {"description": field.description, "externalId": external_id,
               "label": field.label}
    if field.length is not None:
        values["length"] = field.length
    if field.type != "LongTextArea":
        values["required"] = False
    values |= {"trackHistory": False, "type": field.type}
    if field.type == "Text":
        values["unique"] = external_id
    if field.type == "LongTextArea":
        values["visibleLines"] = 10
    return _xml("CustomField", _tags(values))


def permission_set_xml() -> str:
    grants = [f"{obj}.{f.name}" for obj in ("Contact", "Lead") for f in RECORD_FIELDS]
    grants += [f"{obj}.{TASK_KEY.name}" for obj in ("Event", "Task")]
    body = _tags({"description": "Field-level security on the fields Baton writes. Assign it to "
                                "Baton's integration user."})
    for name in sorted(grants):
        body += "    <fieldPermissions>\n" + _tags({"editable": True, "field": name,
                                                    "readable": True}, 8) + \
            "    </fieldPermissions>\n"
    body += _tags({"hasActivationRequired": False, "label": "Baton Integration"})
    return _xml("PermissionSet", body)


def callout_permission_set_xml() -> str:
    body = _tags({"description": "Lets a user's Flows call Baton through the Baton named "
                                "credential."})
    body += "    <externalCredentialPrincipalAccesses>\n" + _tags(
        {"enabled": True, "externalCredentialPrincipal": "Baton-Baton_Principal"}, 8) + \
        "    </externalCredentialPrincipalAccesses>\n"
    body += _tags({"hasActivationRequired": False, "label": "Baton Flow Callout"})
    body += "    <objectPermissions>\n" + _tags({
        "allowCreate": False, "allowDelete": False, "allowEdit": False, "allowRead": True,
        "modifyAllRecords": False, "object": "UserExternalCredential",
        "viewAllRecords": False}, 8) + "    </objectPermissions>\n"
    return _xml("PermissionSet", body)


def external_credential_xml() -> str:
    header = _tags({"parameterGroup": "DefaultGroup", "parameterName": "Authorization",
                    "parameterType": "AuthHeader",
                    "parameterValue": "{!'Bearer ' & $Credential.Baton.ApiKey}",
                    "sequenceNumber": 1}, 8)
    principal = _tags({"parameterGroup": "Baton_Principal", "parameterName": "Baton_Principal",
                       "parameterType": "NamedPrincipal", "sequenceNumber": 1}, 8)
    body = _tags({"authenticationProtocol": "Custom"})
    body += f"    <externalCredentialParameters>\n{header}    </externalCredentialParameters>\n"
    body += f"    <externalCredentialParameters>\n{principal}    </externalCredentialParameters>\n"
    body += _tags({"label": "Baton"})
    return _xml("ExternalCredential", body)


def named_credential_xml(base_url: str) -> str:
    body = _tags({"allowMergeFieldsInBody": False, "allowMergeFieldsInHeader": False,
                  "calloutStatus": "Enabled", "generateAuthorizationHeader": False,
                  "label": "Baton"})
    body += "    <namedCredentialParameters>\n" + _tags(
        {"parameterName": "Url", "parameterType": "Url", "parameterValue": base_url}, 8) + \
        "    </namedCredentialParameters>\n"
    body += "    <namedCredentialParameters>\n" + _tags(
        {"externalCredential": "Baton", "parameterName": "ExternalCredential",
         "parameterType": "Authentication"}, 8) + "    </namedCredentialParameters>\n"
    body += _tags({"namedCredentialType": "SecuredEndpoint"})
    return _xml("NamedCredential", body)


def external_service_xml(openapi: dict[str, Any]) -> str:
    operations = sorted(op["operationId"] for path in openapi.get("paths", {}).values()
                        for op in path.values() if isinstance(op, dict) and "operationId" in op)
    body = _tags({"description": "Baton: personalized emails, recommendations and replies "
                                "for a record, from Flow.", "label": "Baton",
                  "namedCredentialReference": "Baton"})
    for name in operations:
        body += "    <operations>\n" + _tags({"active": True, "name": name}, 8) + \
            "    </operations>\n"
    body += _tags({"registrationProviderType": "Custom",
                   "schema": json.dumps(openapi, separators=(",", ":"), ensure_ascii=False),
                   "schemaType": "OpenApi3", "schemaUploadFileExtension": "json",
                   "schemaUploadFileName": "baton_openapi", "status": "Complete",
                   "systemVersion": 5})
    return _xml("ExternalServiceRegistration", body)


def workflow_xml(sobject: str, endpoint: str, integration_user: str) -> str:
    values: dict[str, Any] = {"fullName": f"Baton_{sobject}_Email", "apiVersion": API_VERSION,
                              "description": f"Asks Baton for a personalized email for this "
                                             f"{sobject}; Baton writes it to the Baton fields and "
                                             "a Task.",
                              "endpointUrl": endpoint}
    body = _tags(values, 8)
    body += "".join(f"        <fields>{f}</fields>\n" for f in OUTBOUND_FIELDS)
    body += _tags({"includeSessionId": False, "integrationUser": integration_user,
                   "name": f"Baton {sobject} Email", "protected": False,
                   "useDeadLetterQueue": False}, 8)
    return _xml("Workflow", f"    <outboundMessages>\n{body}    </outboundMessages>\n")


def project(base_url: str, integration_user: str, openapi: dict[str, Any],
            path_token: str = "") -> dict[Path, str]:
    """Every file of the project, by its path in the project."""
    endpoint = f"{base_url}/salesforce/outbound" + (f"/{path_token}" if path_token else "")
    files: dict[Path, str] = {Path("sfdx-project.json"): json.dumps({
        "packageDirectories": [{"path": "force-app", "default": True}], "name": "baton",
        "namespace": "", "sfdcLoginUrl": "https://login.salesforce.com",
        "sourceApiVersion": API_VERSION}, indent=2) + "\n"}
    for sobject in ("Lead", "Contact"):
        for field in RECORD_FIELDS:
            files[ROOT / "objects" / sobject / "fields" / f"{field.name}.field-meta.xml"] = \
                field_xml(field)
        files[ROOT / "workflows" / f"{sobject}.workflow-meta.xml"] = \
            workflow_xml(sobject, endpoint, integration_user)
    files[ROOT / "objects/Activity/fields" / f"{TASK_KEY.name}.field-meta.xml"] = \
        field_xml(TASK_KEY, external_id=True)
    files[ROOT / "permissionsets/Baton_Integration.permissionset-meta.xml"] = permission_set_xml()
    files[ROOT / "permissionsets/Baton_Flow_Callout.permissionset-meta.xml"] = \
        callout_permission_set_xml()
    files[ROOT / "externalCredentials/Baton.externalCredential-meta.xml"] = \
        external_credential_xml()
    files[ROOT / "namedCredentials/Baton.namedCredential-meta.xml"] = named_credential_xml(base_url)
    files[ROOT / "externalServiceRegistrations/Baton.externalServiceRegistration-meta.xml"] = \
        external_service_xml(openapi)
    return files


def render(out: Path, base_url: str, integration_user: str, openapi: dict[str, Any],
           path_token: str = "") -> list[Path]:
    """Write the project under ``out``; return the files written."""
    written = []
    for relative, text in project(base_url, integration_user, openapi, path_token).items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
