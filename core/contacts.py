"""One contact vocabulary: the canonical field names Baton's prompts, privacy rules and connectors
use, and every name a contact field arrives under.

Contacts come as HubSpot internal names (``firstname``, ``hs_email_optout``), HubSpot export
headers (``First Name``, ``Unsubscribed from all email``), Salesforce API names (``FirstName``,
``MailingPostalCode``, ``HasOptedOutOfEmail``), Salesforce labels and report headers (``Mailing
Zip/Postal Code``, ``Email Opt Out``), Data Loader's upper-case API names and spreadsheet headers
of any case and spacing. A name is looked up by its *key*: NFKC, case-folded, letters and digits
only (``First Name``, ``first_name``, ``FirstName`` and ``FIRSTNAME`` all become ``firstname``),
so one alias entry covers every spelling of a name.

Unknown fields are kept as they are (never silently dropped); :func:`looks_personal` says whether
such a field should be masked as personal data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

# canonical name -> the keys of the other names it arrives under (see :func:`field_key`)
ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "givenname", "forename", "first"),
    "middle_name": ("middlename", "middle", "middleinitial"),
    "last_name": ("lastname", "surname", "familyname", "last"),
    "name": ("name", "fullname", "contactname", "contact", "leadname", "displayname"),
    "salutation": ("salutation", "prefix", "honorific"),
    "suffix": ("suffix",),
    "email": ("email", "emailaddress", "mail", "email1", "primaryemail", "workemail",
              "businessemail", "contactemail"),
    "phone": ("phone", "phonenumber", "telephone", "tel", "workphone", "businessphone",
              "officephone", "primaryphone"),
    "mobile": ("mobile", "mobilephone", "mobilephonenumber", "mobilenumber", "cell",
               "cellphone", "cellphonenumber"),
    "home_phone": ("homephone", "homephonenumber"),
    "other_phone": ("otherphone", "assistantphone", "asstphone", "secondaryphone"),
    "fax": ("fax", "faxnumber", "fax1", "businessfax"),
    "address": ("address", "streetaddress", "street", "address1", "addressline1", "addressline2",
                "mailingstreet", "otherstreet", "mailingaddress", "homeaddress"),
    "city": ("city", "mailingcity", "othercity", "town"),
    "state": ("state", "stateregion", "region", "province", "stateprovince", "mailingstate",
              "mailingstateprovince", "otherstate"),
    "postal_code": ("postalcode", "zip", "zipcode", "postcode", "zippostalcode",
                    "mailingpostalcode", "mailingzippostalcode", "otherpostalcode",
                    "otherzippostalcode"),
    "country": ("country", "countryregion", "mailingcountry", "othercountry"),
    "birthdate": ("birthdate", "dateofbirth", "dob", "birthday"),
    "company": ("company", "companyname", "accountname", "account", "organization",
                "organisation", "employer", "associatedcompany"),
    "job_title": ("jobtitle", "title", "position"),
    "department": ("department",),
    "industry": ("industry",),
    "lifecycle_stage": ("lifecyclestage",),
    "lead_source": ("leadsource", "originalsource"),
    "last_purchase": ("lastpurchase",),
    "language": ("hslanguage", "preferredlanguage", "language", "locale"),
    "email_opt_out": ("hsemailoptout", "hasoptedoutofemail", "emailoptout",
                      "unsubscribedfromallemail", "optedoutofemail", "optout", "optedout",
                      "unsubscribed", "donotemail", "emailunsubscribed", "marketingoptout"),
    "record_id": ("recordid", "hsobjectid", "objectid", "contactid", "leadid", "vid", "id"),
    "owner": ("contactowner", "hubspotownerid", "ownerid", "owner", "contactownername",
              "ownername", "leadowner"),
}
CANONICAL = tuple(ALIASES)
_BY_KEY = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
_BY_KEY.update({name.replace("_", ""): name for name in CANONICAL})

# Fields that steer Baton (consent, language, ids) and are not shown to a model.
CONTROL_FIELDS = frozenset({"email_opt_out", "language", "record_id", "owner"})
# Fields whose values are phone numbers: also found in text as bare digits.
PHONE_FIELDS = frozenset({"phone", "mobile", "home_phone", "other_phone", "fax"})

# Words in an unknown field's name that make it personal ("Spouse name", "Emergency phone"),
# unless the name is about something else ("Product name", "Company domain").
_PERSONAL_WORDS = frozenset({
    "name", "names", "email", "mail", "phone", "telephone", "tel", "mobile", "cell", "fax",
    "address", "street", "zip", "postal", "postcode", "birthday", "birthdate", "dob", "ssn",
    "passport", "iban", "linkedin", "twitter", "whatsapp", "skype", "wechat", "line",
})
_NOT_PERSONAL_WORDS = frozenset({
    "product", "item", "sku", "company", "account", "brand", "campaign", "file", "list",
    "event", "domain", "app", "plan", "store", "shop", "team", "form", "page", "template",
})
_TRUE = frozenset({"true", "yes", "y", "1", "x", "t", "on", "optedout", "opted out",
                   "unsubscribed", "はい"})


def field_key(name: str) -> str:
    """The lookup key of a field name: NFKC, case-folded, letters and digits only."""
    folded = unicodedata.normalize("NFKC", str(name)).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def canonical_name(name: str) -> str | None:
    """The canonical name a field name stands for, or None for a field Baton does not know."""
    return _BY_KEY.get(field_key(name))


def _words(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", unicodedata.normalize("NFKC", str(name)))
    return [w for w in re.split(r"[^0-9a-z]+", spaced.casefold()) if w]


def looks_personal(name: str) -> bool:
    """Whether an unknown field, by its name, holds personal data (``Spouse name``,
    ``Emergency contact phone``, ``whatsapp``) rather than something about a product."""
    words = set(_words(name))
    return bool(words & _PERSONAL_WORDS) and not words & _NOT_PERSONAL_WORDS


def canonical(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with known field names replaced by their canonical names and unknown ones kept
    as they are. A HubSpot object (``{"properties": {...}}``) is unwrapped. Where two names map to
    one field (``Phone`` and ``phone``), the first non-empty value wins. Values are untouched,
    apart from surrounding white space on text."""
    if isinstance(record.get("properties"), Mapping) and not canonical_name("properties"):
        record = {**record["properties"], **{k: v for k, v in record.items() if k != "properties"
                                              and k not in ("id", "createdAt", "updatedAt",
                                                            "archived")}}
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = canonical_name(key) or str(key)
        if isinstance(value, str):
            value = value.strip()
        if (name in out and not _empty(value) and _empty(out[name])) or name not in out:
            out[name] = value
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def truthy(value: Any) -> bool:
    """A CRM or spreadsheet flag as a boolean (``true``, ``Yes``, ``1``, ``x``, ``opted out``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    return " ".join(str(value).casefold().split()) in _TRUE


def opted_out(record: Mapping[str, Any]) -> bool:
    """Whether the contact opted out of marketing email (by any name of that flag)."""
    return any(canonical_name(k) == "email_opt_out" and truthy(v) for k, v in record.items())


def for_model(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without the fields that steer Baton and mean nothing to a model."""
    return {k: v for k, v in record.items() if k not in CONTROL_FIELDS}
