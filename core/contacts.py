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
from functools import lru_cache
from typing import Any

# canonical name -> the keys of the other names it arrives under (see :func:`field_key`)
ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "givenname", "forename", "first"),
    "middle_name": ("middlename", "middle", "middleinitial"),
    "last_name": ("lastname", "surname", "familyname", "last"),
    "name": ("name", "fullname", "contactname", "leadname", "displayname"),
    "salutation": ("salutation", "prefix", "honorific"),
    "suffix": ("suffix",),
    "email": ("email", "emailaddress", "mail", "email1", "primaryemail", "workemail",
              "businessemail", "contactemail", "personemail"),
    "phone": ("phone", "phonenumber", "telephone", "tel", "workphone", "businessphone",
              "officephone", "primaryphone"),
    "mobile": ("mobile", "mobilephone", "mobilephonenumber", "mobilenumber", "cell",
               "cellphone", "cellphonenumber", "personmobilephone"),
    "home_phone": ("homephone", "homephonenumber", "personhomephone"),
    "other_phone": ("otherphone", "assistantphone", "asstphone", "secondaryphone",
                    "personotherphone", "personassistantphone"),
    "fax": ("fax", "faxnumber", "fax1", "businessfax"),
    "address": ("address", "streetaddress", "street", "address1", "addressline1", "addressline2",
                "mailingstreet", "otherstreet", "mailingaddress", "homeaddress",
                "personmailingstreet", "personotherstreet"),
    "city": ("city", "mailingcity", "othercity", "town", "personmailingcity"),
    "state": ("state", "stateregion", "province", "stateprovince", "mailingstate",
              "mailingstateprovince", "otherstate", "personmailingstate"),
    "postal_code": ("postalcode", "zip", "zipcode", "postcode", "zippostalcode",
                    "mailingpostalcode", "mailingzippostalcode", "otherpostalcode",
                    "otherzippostalcode", "personmailingpostalcode"),
    "country": ("country", "countryregion", "mailingcountry", "othercountry",
                "personmailingcountry"),
    "birthdate": ("birthdate", "dateofbirth", "dob", "birthday", "personbirthdate"),
    "company": ("company", "companyname", "accountname", "account", "organization",
                "organisation", "employer", "associatedcompany"),
    "job_title": ("jobtitle", "title", "position"),
    "department": ("department",),
    "industry": ("industry",),
    "lifecycle_stage": ("lifecyclestage",),
    "lead_source": ("leadsource", "originalsource"),
    "last_purchase": ("lastpurchase", "lastproductpurchased", "lastorderproduct"),
    "purchases": ("purchases", "pastpurchases", "purchasehistory", "previouspurchases",
                  "productspurchased", "orderhistory", "purchasedproducts"),
    "language": ("hslanguage", "preferredlanguage", "language", "locale"),
    "email_opt_out": ("hsemailoptout", "hasoptedoutofemail", "emailoptout",
                      "unsubscribedfromallemail", "optedoutofemail", "optout", "optedout",
                      "unsubscribed", "donotemail", "emailunsubscribed", "marketingoptout",
                      "personhasoptedoutofemail"),
    "record_id": ("recordid", "hsobjectid", "objectid", "contactid", "leadid", "vid", "id"),
    # the CRM's own users (owners, editors): not the contact, never shown to a model
    "owner": ("contactowner", "hubspotownerid", "ownerid", "owner", "contactownername",
              "ownername", "leadowner", "accountowner", "recordowner", "createdby",
              "lastmodifiedby", "modifiedby", "createdbyname"),
}
# Spreadsheet headers in the languages of Baton's users (keys: accents dropped, see field_key)
LOCAL_ALIASES: dict[str, tuple[str, ...]] = {
    "first_name": ("vorname", "prenom", "nombre", "nome", "voornaam", "fornavn", "fornamn",
                   "imie", "名", "下の名前", "이름"),
    "last_name": ("nachname", "familienname", "nom", "nomdefamille", "apellido", "apellidos",
                  "cognome", "sobrenome", "achternaam", "efternavn", "efternamn", "nazwisko",
                  "姓", "名字", "苗字", "성"),
    "name": ("氏名", "名前", "お名前", "フルネーム", "姓名", "성명", "nomcomplet",
             "nombrecompleto", "vollstandigername"),
    "email": ("メール", "メールアドレス", "eメール", "電子メール", "邮箱", "电子邮件", "이메일",
              "correo", "correoelectronico", "courriel", "adressemail", "epost", "emailadresse"),
    "phone": ("telefon", "telefonnummer", "telephone", "telefono", "telefone", "telefoon",
              "電話", "電話番号", "电话", "전화", "전화번호"),
    "mobile": ("handy", "mobil", "mobiltelefon", "portable", "movil", "celular", "cellulare",
               "携帯", "携帯電話", "携帯番号", "手机", "휴대폰"),
    "address": ("adresse", "anschrift", "strasse", "direccion", "indirizzo", "endereco",
                "adres", "住所", "地址", "주소"),
    "city": ("stadt", "ort", "ville", "ciudad", "citta", "cidade", "stad", "市区町村", "城市"),
    "postal_code": ("plz", "postleitzahl", "codepostal", "codigopostal", "cap", "cep",
                    "郵便番号", "邮编", "우편번호"),
    "country": ("land", "pays", "pais", "paese", "国", "国名", "国家"),
    "company": ("firma", "unternehmen", "societe", "entreprise", "empresa", "azienda", "bedrijf",
                "会社", "会社名", "企業名", "公司", "회사"),
    "birthdate": ("geburtsdatum", "geburtstag", "datedenaissance", "fechadenacimiento",
                  "生年月日", "誕生日", "生日", "생년월일"),
}
CANONICAL = tuple(ALIASES)
_BY_KEY = {alias: name for table in (ALIASES, LOCAL_ALIASES)
           for name, aliases in table.items() for alias in aliases}
_BY_KEY.update({name.replace("_", ""): name for name in CANONICAL})

# Fields that steer Baton (consent, language, ids) and are not shown to a model.
CONTROL_FIELDS = frozenset({"email_opt_out", "language", "record_id", "owner"})
# Fields that hold products, not people: the names inside them (a catalog item's ``name``) are
# product names. Values inside are still masked where they hold a contact's value or a pattern.
PRODUCT_FIELDS = frozenset({"catalog", "purchases", "products", "line_items", "last_purchase"})
# Fields whose values are phone numbers: also found in text as bare digits.
PHONE_FIELDS = frozenset({"phone", "mobile", "home_phone", "other_phone", "fax"})

# What makes an unknown field personal: a part of its name ("ASSISTANTNAME", "Spouse name",
# "billing_address", "氏名の読み"), or one of its words ("Emergency contact", "Kids", "Tel 2") ...
_PERSONAL_PARTS = ("name", "email", "phone", "mobile", "address", "street", "postal",
                   "postcode", "zipcode", "birth", "passport", "iban", "linkedin", "whatsapp",
                   "skype", "wechat", "spouse", "partner", "guardian", "emergency", "recipient",
                   "shipto", "billto", "contactperson", "vorname", "nachname", "prenom",
                   "apellido", "telefon", "adresse", "anschrift",
                   "名前", "氏名", "住所", "電話", "携帯", "メール", "郵便", "生年月日", "姓名", "地址",
                   "电话", "手机", "邮箱", "이름", "주소", "전화")
_PERSONAL_WORDS = frozenset({"tel", "cell", "fax", "zip", "dob", "ssn", "line", "mail", "kids",
                             "children", "child", "wife", "husband", "mother", "father", "parent",
                             "nom", "plz", "nome", "nombre", "handy", "contact"})
# ... unless it is about something else ("Product name", "Company domain", "File name").
_NOT_PERSONAL_PARTS = ("product", "item", "sku", "company", "account", "brand", "campaign",
                       "file", "domain", "template", "hostname", "event", "store",
                       "shop", "plan", "list", "page", "form", "team", "deal", "pipeline")
# Values that clearly say "not opted out"; any other non-empty opt-out value counts as opted out
# (WAHR, VRAI, Checked, ✓ ...): consent fails closed.
_FALSE = frozenset({"", "false", "no", "n", "0", "0.0", "f", "off", "none", "null", "nil",
                    "falsch", "faux", "non", "nein", "nee", "nej", "unchecked", "opted in",
                    "optedin", "subscribed", "いいえ", "-"})


def field_key(name: str) -> str:
    """The lookup key of a field name: NFKC, case-folded, accents dropped, letters and digits
    only (``Prénom`` -> ``prenom``, ``First Name`` -> ``firstname``)."""
    decomposed = unicodedata.normalize("NFKD", str(name))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", plain).casefold())
    return "".join(ch for ch in folded if ch.isalnum())


@lru_cache(maxsize=4096)  # field names repeat across every task: fold each once
def canonical_name(name: str) -> str | None:
    """The canonical name a field name stands for, or None for a field Baton does not know. A
    report's qualified header (``Contact: First Name``) is read by its last part; HubSpot's
    per-subscription opt-outs (``hs_email_optout_1234``) are opt-outs too."""
    key = field_key(name)
    found = _BY_KEY.get(key)
    if found is None and ":" in str(name):
        found = _BY_KEY.get(field_key(str(name).rsplit(":", 1)[1]))
    if found is None and re.fullmatch(r"hsemailoptout\d+", key):
        found = "email_opt_out"
    return found


def _words(name: str) -> list[str]:
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", unicodedata.normalize("NFKC", str(name)))
    return [w for w in re.split(r"[^0-9a-z]+", spaced.casefold()) if w]


def looks_personal(name: str) -> bool:
    """Whether an unknown field, by its name, holds personal data (``Spouse name``,
    ``ASSISTANTNAME``, ``Emergency contact``, ``Kids``, ``氏名``) rather than something about a
    product, a company or a file. Baton errs towards masking."""
    key = field_key(name)
    if any(part in key for part in _NOT_PERSONAL_PARTS):
        return False
    return any(part in key for part in _PERSONAL_PARTS) or bool(set(_words(name)) & _PERSONAL_WORDS)


def canonical(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with known field names replaced by their canonical names and unknown ones kept
    as they are. A HubSpot object (``{"properties": {...}}``) is unwrapped. Where two names map to
    one field, an empty value gives way to a filled one, and a second, different value keeps its
    own name (``Title = Dr.`` beside ``Job Title = CTO``): nothing is dropped. Values are
    untouched, apart from surrounding white space on text."""
    if isinstance(record.get("properties"), Mapping) and not canonical_name("properties"):
        record = {**record["properties"], **{k: v for k, v in record.items() if k != "properties"
                                              and k not in ("id", "createdAt", "updatedAt",
                                                            "archived")}}
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = canonical_name(key) or str(key)
        if isinstance(value, str):
            value = value.strip()
        if name not in out or _empty(out[name]):
            out[name] = value
        elif not _empty(value) and value != out[name]:
            alias = str(key)
            while alias in out:
                alias += "_2"
            out[alias] = value
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def opted_out(record: Mapping[str, Any]) -> bool:
    """Whether the contact opted out of marketing email: any flag of that meaning, under any of
    its names (also HubSpot's ``{"value": ...}`` shape, and a record's ``properties``), holds a
    value other than a clear "no". An unreadable value counts as opted out."""
    if isinstance(record.get("properties"), Mapping) and opted_out(record["properties"]):
        return True
    for key, value in record.items():
        if canonical_name(str(key)) != "email_opt_out":
            continue
        if isinstance(value, Mapping):
            value = value.get("value", "")
        if isinstance(value, bool | int | float):
            if value:
                return True
        elif " ".join(str(value).casefold().split()) not in _FALSE:
            return True
    return False


MAX_DEPTH = 32  # levels of nesting a context may have
# The shape of the fields Baton reads structure from: a task whose context has another shape is
# refused before any model runs (it is the client's mistake, and retrying cannot mend it).
SHAPES: dict[str, tuple[type, ...]] = {"purchases": (list, str), "catalog": (list,),
                                       "line_items": (list,)}


def shape_error(record: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of ``record``'s structural fields, or None."""
    for name, types in SHAPES.items():
        value = record.get(name)
        if value is not None and not isinstance(value, types):
            expected = " or ".join("a list" if t is list else "text" for t in types)
            return f"context.{name}: expected {expected}, got {type(value).__name__}"
    catalog = record.get("catalog")
    if isinstance(catalog, list) and any(not isinstance(item, Mapping) for item in catalog):
        return "context.catalog: expected a list of objects such as {\"sku\": ..., \"name\": ...}"
    return None


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests mappings and lists deeper than ``limit`` (checked without
    recursion, so a hostile payload cannot exhaust the stack)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, Mapping):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list | tuple):
            stack += [(v, depth + 1) for v in item]
    return False


def for_model(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without the fields that steer Baton and mean nothing to a model (under their
    canonical names, or a second column of the same meaning under its own)."""
    return {k: v for k, v in record.items()
            if k not in CONTROL_FIELDS and canonical_name(str(k)) not in CONTROL_FIELDS}
