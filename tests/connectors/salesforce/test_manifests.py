"""Baton's Salesforce metadata as an SFDX project: rendered by ``baton manifests render``, checked
against the metadata types' required elements and against what the connector writes, and
converted offline with Salesforce's own source-deploy-retrieve library (what ``sf project convert
source`` and ``sf project deploy start`` run first)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from defusedxml import ElementTree
from openapi_spec_validator import validate

from baton.cli import cli
from connectors.salesforce.crm import TASK_KEY, baton_fields
from manifests import sfdx
from webhooks.openapi import document

CHECKER = Path(__file__).resolve().parents[2] / "salesforce_project"
BASE = "https://baton.example.com"
NS = "{http://soap.sforce.com/2006/04/metadata}"
REQUIRED = {  # the Metadata API's required elements, by root element
    "CustomField": {"fullName", "label", "type"},
    "PermissionSet": {"label"},
    "ExternalCredential": {"authenticationProtocol", "label"},
    "NamedCredential": {"label", "namedCredentialType"},
    "ExternalServiceRegistration": {"label", "status", "schema", "schemaType"},
    "Workflow": {"outboundMessages"},
}
OUTBOUND_REQUIRED = {"fullName", "apiVersion", "endpointUrl", "fields", "includeSessionId",
                     "integrationUser", "name", "protected"}


def render(out: Path, *extra: str) -> list[Path]:
    result = CliRunner().invoke(cli, ["manifests", "render", "--base-url", BASE, "--out", str(out),
                                      "--salesforce-user", "baton@yourco.com", *extra])
    assert result.exit_code == 0, result.output
    return [Path(line) for line in result.stdout.splitlines() if "/salesforce/" in line]


def parsed(path: Path) -> tuple[str, dict[str, list[object]]]:
    root = ElementTree.parse(path).getroot()
    children: dict[str, list[object]] = {}
    for child in root:
        children.setdefault(child.tag.removeprefix(NS), []).append(child)
    return root.tag.removeprefix(NS), children


def test_every_file_has_its_types_required_elements(tmp_path: Path) -> None:
    files = render(tmp_path)
    project = tmp_path / "salesforce"
    assert json.loads((project / "sfdx-project.json").read_text())["packageDirectories"] == [
        {"path": "force-app", "default": True}]
    roots = []
    for path in files:
        if path.suffix != ".xml":
            continue
        root, children = parsed(path)
        roots.append(root)
        missing = REQUIRED[root] - set(children)
        assert not missing, (path, missing)
        if root == "CustomField":
            assert path.name == f"{children['fullName'][0].text}.field-meta.xml"  # type: ignore[attr-defined]
        if root == "Workflow":
            for message in children["outboundMessages"]:
                tags = {c.tag.removeprefix(NS) for c in message}  # type: ignore[attr-defined]
                assert tags >= OUTBOUND_REQUIRED, tags
    assert sorted(set(roots)) == sorted(REQUIRED)


def test_the_fields_are_what_the_connector_writes_and_the_permission_set_grants_them(
        tmp_path: Path) -> None:
    render(tmp_path)
    objects = tmp_path / "salesforce/force-app/main/default/objects"
    written = set(baton_fields("Lead", {"Email_Subject": "", "Email_Body": "", "Receipt": "",
                                        "Generated_At": ""}))
    for sobject in ("Lead", "Contact"):
        deployed = {p.name.removesuffix(".field-meta.xml") for p in (objects / sobject / "fields").iterdir()}
        assert written <= deployed, written - deployed
    key = ElementTree.parse(objects / "Activity/fields" / f"{TASK_KEY}.field-meta.xml").getroot()
    assert key.find(f"{NS}externalId").text == "true"  # type: ignore[union-attr]
    perms = ElementTree.parse(tmp_path / "salesforce/force-app/main/default/permissionsets/"
                              "Baton_Integration.permissionset-meta.xml").getroot()
    granted = {p.find(f"{NS}field").text for p in perms.findall(f"{NS}fieldPermissions")  # type: ignore[union-attr]
               if p.find(f"{NS}editable").text == "true"}  # type: ignore[union-attr]
    for sobject in ("Lead", "Contact"):
        assert {f"{sobject}.{f}" for f in written} <= granted
    assert {f"Task.{TASK_KEY}", f"Event.{TASK_KEY}"} <= granted  # Activity fields: as Task/Event


def test_the_external_service_is_baton_openapi_document_and_valid(tmp_path: Path) -> None:
    render(tmp_path)
    esr = ElementTree.parse(tmp_path / "salesforce/force-app/main/default/"
                            "externalServiceRegistrations/Baton.externalServiceRegistration-meta.xml"
                            ).getroot()
    schema = json.loads(esr.find(f"{NS}schema").text)  # type: ignore[union-attr, arg-type]
    assert schema == json.loads(json.dumps(document()))
    validate(schema)
    operations = {o.find(f"{NS}name").text for o in esr.findall(f"{NS}operations")}  # type: ignore[union-attr]
    assert "generateForRecord" in operations
    assert esr.find(f"{NS}namedCredentialReference").text == "Baton"  # type: ignore[union-attr]


def test_the_outbound_messages_go_to_baton_as_the_integration_user(tmp_path: Path) -> None:
    render(tmp_path, "--salesforce-path-token", "s3cret-path-token")
    for sobject in ("Lead", "Contact"):
        flow = (tmp_path / f"salesforce/force-app/main/default/workflows/{sobject}.workflow-meta.xml")
        root = ElementTree.parse(flow).getroot()
        message = root.find(f"{NS}outboundMessages")
        assert message.find(f"{NS}endpointUrl").text == \
            f"{BASE}/salesforce/outbound/s3cret-path-token"  # type: ignore[union-attr]
        assert message.find(f"{NS}integrationUser").text == "baton@yourco.com"  # type: ignore[union-attr]
        assert [f.text for f in message.findall(f"{NS}fields")] == ["Id", "LastModifiedById"]  # type: ignore[union-attr]
        assert message.find(f"{NS}includeSessionId").text == "false"  # type: ignore[union-attr]


@pytest.mark.parametrize(("args", "reason"), [
    (["--salesforce-user", "not a user"], "--salesforce-user"),
    (["--salesforce-user", "a@b.com</integrationUser><x>@y"], "--salesforce-user"),
    (["--salesforce-user", "a@b.com", "--salesforce-path-token", "../x"], "--salesforce-path-token"),
])
def test_render_parameters_that_would_break_the_xml_are_refused(tmp_path: Path, args: list[str],
                                                               reason: str) -> None:
    result = CliRunner().invoke(cli, ["manifests", "render", "--base-url", BASE, "--out",
                                      str(tmp_path), *args])
    assert result.exit_code == 1 and reason in result.stderr
    assert not (tmp_path / "salesforce").exists()


@pytest.fixture(scope="module")
def converter() -> Path:
    """Salesforce's source-deploy-retrieve, installed from the lock file on first use."""
    if not (CHECKER / "node_modules" / "@salesforce" / "source-deploy-retrieve").exists():
        npm = shutil.which("npm")
        assert npm, "this test needs Node.js and npm (apt-get install nodejs npm)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CHECKER, check=True,
                       capture_output=True, timeout=600)
    return CHECKER / "check.cjs"


def convert(converter: Path, project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "this test needs Node.js"
    return subprocess.run([node, str(converter), str(project), str(out)], capture_output=True,
                          text=True, timeout=180)


def test_the_project_converts_with_salesforces_own_library(converter: Path, tmp_path: Path) -> None:
    render(tmp_path)
    done = convert(converter, tmp_path / "salesforce", tmp_path / "mdapi")
    assert done.returncode == 0, done.stdout + done.stderr
    package = (tmp_path / "mdapi/package.xml").read_text()
    for member in ("Lead.Baton_Lead_Email", "Contact.Baton_Contact_Email",
                   "Activity.Baton_Job_Key__c", "Baton_Integration"):
        assert f"<members>{member}</members>" in package
    assert "<name>WorkflowOutboundMessage</name>" in package


def test_the_conversion_check_can_fail(converter: Path, tmp_path: Path) -> None:
    files = sfdx.project(BASE, "baton@yourco.com", document())
    broken = sfdx.ROOT / "objects/Lead/fields/Baton_Receipt__c.field-meta.xml"
    files[broken] = files[broken].replace("</CustomField>", "")  # not well formed
    for relative, text in files.items():
        (tmp_path / "p" / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "p" / relative).write_text(text)
    done = convert(converter, tmp_path / "p", tmp_path / "out")
    assert done.returncode == 1 and "Baton_Receipt__c" in done.stderr
