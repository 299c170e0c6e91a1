"""Finding a contact by email or record id (the contract's lookup, for Slack's /baton email):
the real SDK's ``idProperty=email`` read against the fake HubSpot, which refuses what HubSpot
refuses."""

import pytest

from core.errors import InputError
from tests.connectors.hubspot.conftest import PORTAL, Hub, seed


def test_a_contact_is_found_by_email_in_any_case_or_by_id(hub: Hub) -> None:
    seed(hub.fake, contact="102", name="Şule")
    by_email = hub.connector.find_contact(f"hubspot:{PORTAL}", "  MAYA@Example.net ")
    assert by_email is not None and by_email.id == "101" and by_email.tenant == f"hubspot:{PORTAL}"
    assert by_email.fields["first_name"] == "Maya" and by_email.fields["email"] == "maya@example.net"
    by_id = hub.connector.find_contact(f"hubspot:{PORTAL}", "102")
    assert by_id is not None and by_id.fields["first_name"] == "Şule"
    assert hub.connector.find_contact(f"hubspot:{PORTAL}", "nobody@example.net") is None
    assert hub.connector.find_contact(f"hubspot:{PORTAL}", "999") is None
    assert hub.fake.calls("GET", r"/crm/v3/objects/contacts/.*")  # asked HubSpot, not a cache


@pytest.mark.parametrize(("tenant", "key", "reason"), [
    ("salesforce:00D", "maya@example.net", "not a HubSpot account"),
    ("hubspot:abc", "101", "not a HubSpot account"),
    (f"hubspot:{PORTAL}", "Maya Lindqvist", "an email address or a HubSpot record id"),
])
def test_a_lookup_that_cannot_be_a_hubspot_contact_says_why(hub: Hub, tenant: str, key: str,
                                                          reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        hub.connector.find_contact(tenant, key)


def test_the_fake_refuses_an_id_property_that_is_not_unique(hub: Hub) -> None:
    client = hub.connector.auth.client(PORTAL)
    with pytest.raises(InputError, match="400"):
        client.find_contact("Maya", ["firstname"], by="firstname")
