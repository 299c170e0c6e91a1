"""HubSpot consent and erasure, through the real webhook and action routes, the real
hubspot-api-client and the loopback fake HubSpot."""

from __future__ import annotations

from core.store import ReplyRow, WriteBackRow
from tests.connectors.hubspot.conftest import PORTAL, Hub, call, seed
from tests.connectors.hubspot.test_events import event


def opt_out(hub: Hub, contact: str = "101") -> None:
    hub.fake.portal(PORTAL).objects["contacts"][contact]["hs_email_optout"] = "true"


def test_an_unsubscribed_contact_gets_no_email_and_nothing_is_written(queued_hub: Hub) -> None:
    hub = queued_hub
    seed(hub.fake, contact="102", name="Zoë")
    opt_out(hub, "101")
    hub.webhook([event(0, contact="101"), event(1, contact="102"),
                 event(2, "contact.propertyChange", contact="101", propertyName="baton_generate",
                       propertyValue="true")])
    hub.drain()
    results = {(j.payload["objectId"], j.payload["eventId"]): j for j in hub.jobs("hubspot.event")}
    skipped = [results[(101, 1000)], results[(101, 1002)]]
    for job in skipped:
        assert job.state == "done" and "opted out of marketing email" in job.result["skipped"]
    assert results[(102, 1001)].result["trigger"] == "contact created"
    patched = hub.fake.calls("PATCH", r"/crm/v3/objects/contacts/\d+")
    assert [c.path.rsplit("/", 1)[-1] for c in patched] == ["102"]
    assert hub.fake.notes_of(PORTAL, "101") == []
    assert len(hub.local.prompts) == 1  # the model ran for Zoë only


def test_a_workflow_action_for_an_unsubscribed_contact_fails_continue_with_the_reason(hub: Hub) -> None:
    opt_out(hub)
    r = hub.action("email", call("ap-optout-1"))
    assert r.status_code == 200
    outputs = r.json["outputFields"]
    assert outputs["hs_execution_state"] == "FAIL_CONTINUE"
    assert "opted out of marketing email" in outputs["error"]
    assert hub.fake.calls("PATCH", r"/crm/v3/objects/contacts/\d+") == []
    assert hub.fake.notes_of(PORTAL, "101") == []


def test_a_privacy_deletion_erases_what_baton_stored_about_the_contact(queued_hub: Hub) -> None:
    hub = queued_hub
    seed(hub.fake, contact="102", name="Ann")
    hub.webhook([event(0, contact="101"), event(1, contact="102")])
    hub.action("email", call("ap-erase-1", contact="101"))
    hub.drain()
    mine = [j for j in hub.jobs("hubspot.event") + hub.jobs("hubspot.action")
            if j.subject == "contact:101"]
    assert len(mine) == 2 and all(j.result for j in mine)

    hub.webhook([event(5, "contact.privacyDeletion", contact="101")])
    hub.drain()
    erasure = next(j for j in hub.jobs("hubspot.event") if j.payload.get("eventId") == 1005)
    assert erasure.state == "done"
    assert erasure.result["erased"]["jobs"] == 2 and erasure.result["erased"]["writebacks"] >= 2
    by_id = {j.id: j for j in hub.jobs("hubspot.event") + hub.jobs("hubspot.action")}
    for job in mine:
        erased = by_id[job.id]
        assert erased.payload == {"erased": True} and erased.result is None
    with hub.services.store.session() as s:
        assert s.query(WriteBackRow).filter(WriteBackRow.job_id.in_([j.id for j in mine])).count() == 0
        reply = s.get(ReplyRow, f"hubspot:{PORTAL}:ap-erase-1")
        assert reply is not None and reply.outputs is None
    other = next(j for j in hub.jobs("hubspot.event") if j.subject == "contact:102")
    assert other.result and other.result["trigger"] == "contact created"  # another contact: kept
