"""Contacts from the files marketers really have: a HubSpot export, a Salesforce report, Excel's
semicolons and Windows-1252; and `baton forget`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from baton.cli import cli
from baton.files import load_contacts_csv
from core.errors import InputError
from core.jobs.lifecycle import Jobs, NewJob
from core.retention import subject_for
from core.settings import Settings
from core.store import open_store
from tests.baton.test_cli import env, run  # noqa: F401  (the fixture)

HUBSPOT_EXPORT = (
    '"Record ID","First Name","Last Name","Email","Phone Number","Company Name","Lifecycle Stage",'
    '"Unsubscribed from all email","Contact owner","Preferred language","Last purchase"\n'
    '"51","Ayşe","Yılmaz","ayse@example.com.tr","+90 532 123 45 67","İstanbul Outdoor AŞ",'
    '"customer","false","Jo Admin","tr","Ridge trekking poles"\n'
    '"52","花子","佐藤","hanako@example.jp","090-1234-5678","山風アウトドア","customer","","","ja",'
    '"登山用レインジャケット"\n'
    '"53","José","García","jose@example.es","","Sierra Supply","lead","true","","es",'
    '"Storm rain jacket"\n'
    '"54","Zoë","Ørsted","zoe@example.dk","","Fjord & Field","customer","false","","da",'
    '"Summit 40L backpack"\n'
)
SALESFORCE_REPORT = (
    '"First Name","Last Name","Title","Account Name","Mailing City","Mailing Zip/Postal Code",'
    '"Email","Email Opt Out"\n'
    '"Renée","Dubois","Buyer","Alpine Co","Genève","1201","renee@example.ch","0"\n'
    '"Łukasz","Nowak","","Tatry Sp. z o.o.","Kraków","30-001","lukasz@example.pl","1"\n'
    '\n'
    '"Alpine contacts report"\n'
    '"Confidential Information - Do Not Distribute"\n'
    '"Copyright (c) 2000-2026 salesforce.com, inc. All rights reserved."\n'
)


def test_a_hubspot_export_is_read_under_its_own_headers(tmp_path: Path) -> None:
    path = tmp_path / "hubspot-crm-exports-all-contacts-2026-11-30.csv"
    path.write_text(HUBSPOT_EXPORT, encoding="utf-8-sig")
    contacts = load_contacts_csv(path)
    assert len(contacts.rows) == 4
    assert contacts.known["First Name"] == "first_name"
    assert contacts.known["Unsubscribed from all email"] == "email_opt_out"
    assert contacts.known["Last purchase"] == "last_purchase"
    assert contacts.kept == []
    assert contacts.rows[0]["Company Name"] == "İstanbul Outdoor AŞ"


def test_a_salesforce_report_in_windows_1252_with_its_footer(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(SALESFORCE_REPORT.replace("Łukasz", "Lukas").replace("Kraków", "Krakow")
                     .encode("cp1252"))
    contacts = load_contacts_csv(path)
    assert contacts.encoding == "cp1252" and contacts.footer == 3
    assert [r["First Name"] for r in contacts.rows] == ["Renée", "Lukas"]
    assert contacts.known["Mailing Zip/Postal Code"] == "postal_code"
    assert "footer line(s) skipped" in contacts.describe()


def test_excel_semicolons_and_unknown_columns_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_text("Vorname;Nachname;E-Mail;Lieblingsweg\nJürgen;Groß;jg@example.de;GR20\n",
                    encoding="utf-8")
    contacts = load_contacts_csv(path)
    assert contacts.rows == [{"Vorname": "Jürgen", "Nachname": "Groß", "E-Mail": "jg@example.de",
                              "Lieblingsweg": "GR20"}]
    assert contacts.known == {"Vorname": "first_name", "Nachname": "last_name", "E-Mail": "email"}
    assert contacts.kept == ["Lieblingsweg"]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no header row"),
    (b"\xff\xfeF\x00i\x00r\x00s\x00t\x00", "NUL bytes"),
    (b"Foo,Bar\n1,2\n", "no column Baton knows"),
    (b"First Name,Email\n", "no contacts"),
])
def test_unusable_files_say_what_to_fix(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_contacts_csv(path)


@pytest.mark.model
def test_generate_writes_every_row_of_a_hubspot_export(env: dict[str, str],  # noqa: F811
                                                       tmp_path: Path) -> None:
    path = tmp_path / "hubspot-export.csv"
    path.write_text(HUBSPOT_EXPORT, encoding="utf-8-sig")
    out = tmp_path / "out.jsonl"
    result = run(env, "generate", "email", "--contacts", str(path), "--out", str(out),
                 "--brief", "Recommend the Rain Cover, which keeps a pack dry in any weather.")
    assert result.exit_code == 0, result.stderr
    assert "4 contacts; columns read: Record ID -> record_id" in result.stderr
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert "skipped" in lines[2] and "output" not in lines[2]  # José unsubscribed
    written = 0
    for line, first in ((lines[0], "Ayşe"), (lines[1], "花子"), (lines[3], "Zoë")):
        # each row is its own contact: greeted by its own name (the grammar holds the greeting),
        # or refused by the copy checks (the base model's copy is weak; which rows pass depends
        # on the llama.cpp build's arithmetic), never by the reading of the file
        if "error" in line:
            assert "failed its checks" in line["error"], line
        else:
            assert line["output"]["body"].startswith(f"Hi {first},")
            written += 1
    assert f"{written} of 4 written" in result.stderr and "1 opted out" in result.stderr


def test_forget_erases_a_contact_by_id_or_email(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_store(Settings(data_dir=data).resolved_database_url)
    jobs = Jobs(store)
    ids = jobs.accept("s", [
        NewJob("1", "hubspot.event", "hubspot:7", {"objectId": 101}, subject="contact:101"),
        NewJob("2", "task", "acme", {"context": {"email": "ann@x.com"}},
               subject=subject_for("ann@x.com")),
    ]).job_ids
    store.close()
    runner = CliRunner()
    env_ = {"BATON_DATA_DIR": str(data)}
    r = runner.invoke(cli, ["forget", "hubspot:7", "101"], env=env_)
    assert r.exit_code == 0 and "erased 1 job(s)" in r.stdout
    r = runner.invoke(cli, ["forget", "acme", "ANN@x.com"], env=env_)
    assert r.exit_code == 0 and "erased 1 job(s)" in r.stdout
    r = runner.invoke(cli, ["forget", "acme", "nobody@x.com"], env=env_)
    assert r.exit_code == 0 and "erased 0 job(s)" in r.stdout
    store = open_store(Settings(data_dir=data).resolved_database_url)
    assert all(Jobs(store).get(i).payload == {"erased": True} for i in ids)  # type: ignore[union-attr]
    store.close()
