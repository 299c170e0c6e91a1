"""Contacts from files: one contact as JSON, many as a CSV exported from a CRM or a spreadsheet.

A CSV's headers may be anyone's: HubSpot's export (``First Name``, ``Phone Number``,
``Unsubscribed from all email``), a Salesforce report (``Mailing Zip/Postal Code``), Data Loader's
API names in any case, Excel's semicolon-separated files in European locales, Windows-1252 text.
Columns Baton knows are read under their canonical names (:mod:`core.contacts`); the others are
kept as they are. Blank rows and a report's footer lines are skipped.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from core.contacts import canonical_name
from core.errors import InputError


def _sample(name: str) -> str:
    return (resources.files("baton") / "defaults" / name).read_text(encoding="utf-8")


def load_contact(path: Path | None, language: str) -> dict[str, Any]:
    """A contact from a JSON file (an object, or HubSpot-style ``{"properties": {...}}``),
    or the bundled sample contact for ``language``."""
    if path is None:
        text = _sample("sample_contact_ja.json" if language == "ja" else "sample_contact.json")
        source = "bundled sample contact"
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise InputError(f"{path}: cannot read contact file ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; save it as UTF-8 JSON") from None
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("properties"), dict):
        data = data["properties"]
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object of contact fields")
    return data


@dataclass(frozen=True)
class ContactsFile:
    """The rows of a contacts CSV, what each known column was read as, and the other columns."""

    rows: list[dict[str, str]]
    known: dict[str, str]  # header -> canonical field
    kept: list[str]  # headers Baton does not know, passed on as they are
    encoding: str
    footer: int = 0  # footer lines of a report export, skipped

    def describe(self) -> str:
        known = ", ".join(f"{h} -> {c}" if h != c else c for h, c in self.known.items())
        kept = f"; kept as they are: {', '.join(self.kept)}" if self.kept else ""
        footer = f"; {self.footer} footer line(s) skipped" if self.footer else ""
        return f"{len(self.rows)} contacts; columns read: {known or 'none'}{kept}{footer}"


def load_contacts_csv(path: Path) -> ContactsFile:
    """The contacts of a CSV file; :class:`InputError` says what is wrong and how to fix it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read contacts file ({exc.strerror})") from None
    try:
        text, encoding = raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:  # Excel and Salesforce on Windows write Windows-1252
        try:
            text, encoding = raw.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            raise InputError(f"{path}: neither UTF-8 nor Windows-1252 text; export it as UTF-8 "
                             "CSV") from None
    if "\x00" in text:
        raise InputError(f"{path}: not a text CSV file (it holds NUL bytes; UTF-16? export it "
                         "as UTF-8 CSV)")
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","
    try:
        reader = csv.reader(text.splitlines(), delimiter=delimiter)
        table = [row for row in reader]
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if not table or not any(h.strip() for h in table[0]):
        raise InputError(f"{path}: no header row (expected column names such as First Name, "
                         "Email)")
    headers = [h.strip() for h in table[0]]
    rows: list[dict[str, str]] = []
    blank = footer = 0
    for cells in table[1:]:
        filled = [c for c in cells if c.strip()]
        if not filled:
            blank += 1
        if not cells:  # an empty line (a row of empty cells is a contact, reported as empty)
            continue
        if blank and len(headers) > 2 and len(filled) == 1 and cells[0].strip():
            footer += 1  # after a blank line, a report's footer ("Confidential ...", "Copyright")
            continue
        rows.append({h: c.strip() for h, c in zip(headers, cells, strict=False) if h})
    if not rows:
        raise InputError(f"{path}: no contacts (expected a header row and one row per contact)")
    known = {h: name for h in headers if h and (name := canonical_name(h)) is not None}
    if not known:
        raise InputError(f"{path}: no column Baton knows (headers: {', '.join(headers[:8])}); "
                         "name one First Name, Last Name, Email or Company")
    return ContactsFile(rows, known, [h for h in headers if h and h not in known], encoding,
                        footer)
