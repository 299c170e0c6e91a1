"""What a HubSpot user sees: `baton up` (gunicorn + a worker process + the real local model)
connected to a (fake) HubSpot portal by a private app token. A new contact gets its Baton
properties and note; a workflow action gets its outputs, in the response or by callback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.signatures import hubspot_v1, hubspot_v2
from tests.baton.test_up import _port, call
from tests.conftest import PLUMBING_BRIEF, PLUMBING_EXAMPLES
from tests.connectors.hubspot.conftest import PORTAL, SECRET, TOKEN, seed
from tests.fakes.hubspot import FakeHubSpot

pytestmark = pytest.mark.model


def wait_for(check, seconds: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)
    return found


def test_a_portal_gets_personalized_emails_from_baton_up(tmp_path: Path, model_path: Path,
                                                         greedy_policy: Path) -> None:
    with FakeHubSpot(client_secret=SECRET) as fake:
        fake.private_app(PORTAL, TOKEN)
        fake.create_baton_properties(PORTAL)
        seed(fake)
        seed(fake, contact="102", name="Tomas")
        port = _port()
        plumbing = tmp_path / "baton-plumbing.toml"
        plumbing.write_text(greedy_policy.read_text(encoding="utf-8") + PLUMBING_EXAMPLES,
                            encoding="utf-8")
        env = {**os.environ, "BATON_DATA_DIR": str(tmp_path), "BATON_MODEL_PATH": str(model_path),
               "BATON_CONFIG": str(plumbing), "BATON_WEB_WORKERS": "1",
               "BATON_HUBSPOT_CLIENT_SECRET": SECRET, "BATON_HUBSPOT_API_BASE": fake.url,
               "BATON_HUBSPOT_PORTAL_ID": str(PORTAL), "BATON_HUBSPOT_ACCESS_TOKEN": TOKEN,
               "BATON_HUBSPOT_BRIEF": PLUMBING_BRIEF}
        baton = str(Path(sys.executable).with_name("baton"))
        log = (tmp_path / "up.log").open("wb")
        proc = subprocess.Popen([baton, "up", "--port", str(port)], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _healthy(base), 30)
            body = json.dumps([{"eventId": 1, "subscriptionId": 2, "portalId": PORTAL, "objectId": 101,
                                "subscriptionType": "contact.creation", "occurredAt": 1}]).encode()
            status, reply = call(base + "/hubspot/webhooks", body, {
                "Content-Type": "application/json", "X-HubSpot-Signature": hubspot_v1(SECRET, body)})
            assert (status, reply) == (200, {"accepted": 1, "duplicates": 0})
            contact = fake.portal(PORTAL).objects["contacts"]["101"]
            wait_for(lambda: "baton_email_body" in contact)
            assert "Maya" in contact["baton_email_subject"] + contact["baton_email_body"]
            [note] = wait_for(lambda: fake.notes_of(PORTAL, "101"))
            assert contact["baton_last_receipt"] in note["hs_note_body"]

            action = json.dumps({
                "callbackId": "ap-e2e-1", "origin": {"portalId": PORTAL},
                "object": {"objectId": 102, "objectType": "CONTACT"},
                "inputFields": {"brief": "Thank them and suggest a rain cover.", "tier": "routine"}}).encode()
            url = base + "/hubspot/actions/email"
            status, answer = call(url, action, {
                "Content-Type": "application/json", "X-HubSpot-Signature-Version": "v2",
                "X-HubSpot-Signature": hubspot_v2(SECRET, "POST", url, action)})
            assert status == 200, answer
            outputs = answer["outputFields"]
            if outputs["hs_execution_state"] == "BLOCK":  # slower than the sync budget
                outputs = wait_for(lambda: fake.completed.get("ap-e2e-1"))
            assert outputs["hs_execution_state"] == "SUCCESS", outputs
            assert "Tomas" in outputs["subject"] + outputs["body"] and outputs["route"] == "local"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
            log.close()


def _healthy(base: str) -> bool:
    try:
        return call(base + "/healthz")[0] == 200
    except OSError:
        return False
