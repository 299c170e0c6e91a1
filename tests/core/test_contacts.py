"""One contact vocabulary: every name a contact field arrives under maps to one canonical name."""

from __future__ import annotations

import pytest

from core.contacts import canonical, canonical_name, for_model, looks_personal, opted_out


@pytest.mark.parametrize(("name", "field"), [
    # HubSpot internal names
    ("firstname", "first_name"), ("lastname", "last_name"), ("mobilephone", "mobile"),
    ("jobtitle", "job_title"), ("zip", "postal_code"), ("hs_email_optout", "email_opt_out"),
    ("hs_language", "language"), ("hs_object_id", "record_id"), ("lifecyclestage", "lifecycle_stage"),
    # HubSpot export headers
    ("First Name", "first_name"), ("Phone Number", "phone"), ("Mobile Phone Number", "mobile"),
    ("Company Name", "company"), ("Street Address", "address"), ("State/Region", "state"),
    ("Postal Code", "postal_code"), ("Country/Region", "country"), ("Record ID", "record_id"),
    ("Unsubscribed from all email", "email_opt_out"), ("Preferred language", "language"),
    ("Fax Number", "fax"), ("Date of birth", "birthdate"),
    # Salesforce API names, Data Loader's upper case, labels and report headers
    ("FirstName", "first_name"), ("MiddleName", "middle_name"), ("MailingStreet", "address"),
    ("MailingPostalCode", "postal_code"), ("HomePhone", "home_phone"), ("AssistantPhone", "other_phone"),
    ("HasOptedOutOfEmail", "email_opt_out"), ("FIRSTNAME", "first_name"), ("MAILINGCITY", "city"),
    ("Mailing Zip/Postal Code", "postal_code"), ("Mailing State/Province", "state"),
    ("Email Opt Out", "email_opt_out"), ("Business Phone", "phone"), ("Asst. Phone", "other_phone"),
    ("Account Name", "company"), ("Title", "job_title"), ("Mobile", "mobile"),
    # spreadsheet headers of any case and spacing, and Baton's own names
    ("first_name", "first_name"), ("  E-mail Address ", "email"), ("ＦＩＲＳＴ　ＮＡＭＥ", "first_name"),
    ("last_purchase", "last_purchase"), ("Zip Code", "postal_code"),
    # Salesforce Person Accounts, qualified report headers, the CRM's own users
    ("PersonEmail", "email"), ("PersonMailingPostalCode", "postal_code"),
    ("Contact: First Name", "first_name"), ("Account Owner", "owner"), ("Created By", "owner"),
    # ambiguous names are left alone rather than guessed
    ("Contact", None), ("Region", None),
])
def test_every_spelling_of_a_field_has_one_canonical_name(name: str, field: str | None) -> None:
    assert canonical_name(name) == field


def test_unknown_fields_are_kept_and_known_ones_renamed() -> None:
    record = {"First Name": " Zoë ", "Email": "zoe@example.fr", "Favourite trail": "GR20",
              "Phone": "", "phone": "+33 6 12 34 56 78", "properties_count": 3}
    assert canonical(record) == {"first_name": "Zoë", "email": "zoe@example.fr",
                                 "Favourite trail": "GR20", "phone": "+33 6 12 34 56 78",
                                 "properties_count": 3}


def test_two_columns_of_one_field_lose_nothing() -> None:
    """Outlook's "Title" (a salutation) beside "Job Title": both stay, the second under its name."""
    assert canonical({"Title": "Dr.", "Job Title": "CTO", "Phone": "1", "phone": "2"}) == {
        "job_title": "Dr.", "Job Title": "CTO", "phone": "1", "phone_2": "2"}
    assert for_model(canonical({"Owner": "Jo", "Created By": "Al", "First Name": "Ann"})) == {
        "first_name": "Ann"}


def test_a_hubspot_object_is_unwrapped() -> None:
    obj = {"id": "51", "properties": {"firstname": "Ann", "hs_email_optout": "false"},
           "createdAt": "2026-01-01T00:00:00Z", "archived": False}
    assert canonical(obj) == {"first_name": "Ann", "email_opt_out": "false"}


@pytest.mark.parametrize(("name", "personal"), [
    ("Spouse name", True), ("Emergency contact phone", True), ("whatsapp", True),
    ("secondaryEmail", True), ("Home address 2", True),
    ("Product name", False), ("Company domain", False), ("Favourite trail", False),
    ("Campaign name", False), ("seats", False),
])
def test_unknown_fields_that_look_personal(name: str, personal: bool) -> None:
    assert looks_personal(name) is personal


@pytest.mark.parametrize(("record", "out"), [
    ({"hs_email_optout": "true"}, True), ({"HasOptedOutOfEmail": True}, True),
    ({"Unsubscribed from all email": "Yes"}, True), ({"Email Opt Out": "1"}, True),
    ({"do_not_email": "x"}, True), ({"unsubscribed": "Opted out"}, True),
    ({"hs_email_optout": "false"}, False), ({"HasOptedOutOfEmail": False}, False),
    ({"Email Opt Out": "0"}, False), ({"Email Opt Out": ""}, False), ({"email": "a@b.co"}, False),
    # consent fails closed: a value that is not a clear "no" is an opt-out
    ({"Unsubscribed from all email": "WAHR"}, True), ({"Email Opt Out": "VRAI"}, True),
    ({"Email Opt Out": "Checked"}, True), ({"Email Opt Out": "✓"}, True),
    ({"Email Opt Out": "FALSCH"}, False), ({"Email Opt Out": " No "}, False),
    # a second column of the same meaning counts too, and so do other shapes and names
    ({"Email Opt Out": "0", "Do Not Email": "true"}, True),
    ({"hs_email_optout": {"value": "true"}}, True), ({"properties": {"hs_email_optout": "true"}}, True),
    ({"PersonHasOptedOutOfEmail": "true"}, True), ({"hs_email_optout_8713612": "true"}, True),
    ({"Contact: Email Opt Out": "1"}, True),
])
def test_opt_out_is_read_under_every_name(record: dict, out: bool) -> None:
    assert opted_out(record) is out


def test_fields_that_steer_baton_are_not_for_the_model() -> None:
    assert for_model(canonical({"First Name": "Ann", "Record ID": "51", "hs_email_optout": "false",
                                "hs_language": "en"})) == {"first_name": "Ann"}
