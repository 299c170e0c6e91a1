"""Promise 8 on the wire: 1,000 synthetic contacts, names in 13 scripts written in case,
normalization and width variants, nested, in keys and under every vocabulary's field names, sent
through ``cloud-masked`` by the real openai client to a loopback server that keeps every body.
Not one seeded value may be in what it received."""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest

from core.backends.openai_api import OpenAIBackend
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.policy import BrandVoice, parse_policy
from core.privacy import folded
from core.settings import Settings
from core.store import Store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Task
from core.tasks.prompts import WORDING, example_pool
from tests.fakes.backends import ScriptedBackend
from tests.fakes.openai_server import FakeOpenAI, completion

RECORDS = 1000
REPLY = json.dumps({"subject": "For {first_name}", "preheader": "New gear is in",
                    "body": "Hi {first_name}, thank you for your order, {last_name}."})

# Letters of each script; those used by Baton's own prompt text are removed below, so a seeded
# value found on the wire can only have come from the contact.
SCRIPTS = {
    "latin": "bcdfgklmnprstvzčćđšžñçğşłøåæœ" + "aeiouäëïöüáéíóúàèìòùâêîôû",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώ",
    "cyrillic": "абвгдежзийклмнопрстуфхцчшщыэюяёіїє",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "devanagari": "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह",
    "thai": "กขคงจฉชซญดตถทธนบปผพฟภมยรลวสหอฮ",
    "han": "龍鳳麟鶴亀桜梅椿楓萩藤菊蓮翠碧瑠璃琥珀瑛琳瑶璋",
    "kana": "ぁあぃいぅうぇえぉおかがきぎくぐけげこごさざしじすずせぜそぞただちぢっつづてでとど"
            "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン",
    "hangul": "김이박최정강조윤장임한오서신권황안송류홍민서준하은지우도현",
    "georgian": "აბგდევზთიკლმნოპჟრსტუფქღყშჩცძწჭხჯჰ",
    "armenian": "աբգդեզէըթժիլխծկհձղճմյնշոչպջռսվտրցւփքօֆ",
    "turkish": "abcçdefgğhıijklmnoöprsştuüvyz",
}


def _prompt_text() -> str:
    text = " ".join(str(v) for w in WORDING.values() for v in vars(w).values())
    for kind in ("email", "text", "reply", "recommendation"):
        for lang in WORDING:
            text += json.dumps([e.model_dump() for e in example_pool(kind, lang, [])],
                               ensure_ascii=False)
    return text


def _pools() -> dict[str, str]:
    used = set(folded(_prompt_text()))
    return {name: "".join(ch for ch in letters if folded(ch) not in used or name == "latin")
            for name, letters in SCRIPTS.items()}


class Seeder:
    """Synthetic contacts with their seeded values, from one seeded random generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pools = _pools()
        # the fixed text a wire holds anyway (prompts, examples, this class's own wording): a
        # name inside it ("Mïnú" in "minutes") could not be told apart from a leak
        self.fixed = folded(_prompt_text() + json.dumps(BrandVoice().model_dump())
                            + " wrote from call back on or order with Boots for Road gift_for "
                              "Northwind Trails Fjord & Field")

    def name(self, script: str) -> str:
        pool = self.pools[script]
        while True:
            if script in ("latin", "turkish"):
                n = "".join(self.rng.choice("bdfgklmnprstvz") + self.rng.choice(pool[-25:] if
                            script == "latin" else "aeıioöuü") for _ in range(self.rng.randint(2, 4)))
                n = n.capitalize()
            else:
                n = "".join(self.rng.choice(pool) for _ in range(self.rng.randint(2, 4)))
            if folded(n) not in self.fixed and len(folded(n)) >= 2:
                return n

    def variant(self, value: str) -> str:
        """The value as someone else typed it: upper case, decomposed, full width, as it is."""
        how = self.rng.choice(["upper", "nfd", "wide", "same", "lower"])
        if how == "upper":
            return value.upper()
        if how == "lower":
            return value.lower()
        if how == "nfd":
            return unicodedata.normalize("NFD", value)
        if how == "wide":
            return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value)
        return value

    def record(self, i: int) -> tuple[dict[str, Any], list[str], str]:
        """A contact, its seeded text values, and its phone number."""
        rng = self.rng
        script = list(SCRIPTS)[i % len(SCRIPTS)]
        first, last, middle = self.name(script), self.name(script), self.name(script)
        local = rng.choice(["", "ü", "é", "ø"]).join(["".join(rng.choice("abcdefghkmnprstuvz")
                                                             for _ in range(6)), str(i)])
        email = f"{local}@{rng.choice(['example.com', 'exämple.de', 'пример.рф'])}"
        cc = rng.choice(["+1", "+44", "+81", "+33", "+90"])
        number = "".join(str(rng.randint(0, 9)) for _ in range(9))
        phone = f"{cc} {number[:3]} {number[3:6]} {number[6:]}"
        at = rng.choice(["@", "＠"])
        shape = i % 4
        notes = (f"{self.variant(first)} {self.variant(last)} wrote from "
                 f"{self.variant(email).replace('@', at)}; call back on {cc[1:]}{number} "
                 f"or {number}; order 88{i:06d}")
        if shape == 0:  # HubSpot internal names, nested values, keys
            contact: dict[str, Any] = {
                "firstname": first, "lastname": {"value": last}, "email": email,
                "phone": phone, "company": "Northwind Trails", "notes": notes,
                "history": {email: 3, f"{first} {last}": 1}}
        elif shape == 1:  # Salesforce API names
            contact = {"FirstName": first, "MiddleName": middle, "LastName": last,
                       "Email": email, "HomePhone": phone, "MailingStreet": f"{i} {last} Road",
                       "MailingPostalCode": f"{70000 + i}", "Description": notes + f" {middle}"}
        elif shape == 2:  # a HubSpot export's headers
            contact = {"First Name": first, "Last Name": last, "Email": email,
                       "Phone Number": phone, "Company Name": "Fjord & Field",
                       "Spouse name": middle, "Notes": notes + f" with {self.variant(middle)}"}
        else:  # Baton's own names, and everything in the brief too
            contact = {"first_name": first, "last_name": last, "email": email, "mobile": phone,
                       "purchases": [f"Boots for {first}", {"gift_for": f"{last}"}],
                       "notes": notes}
        seeded = [first, last, email] + ([middle] if shape in (1, 2) else [])
        return contact, seeded, number


def _leaks(wire: str, seeded: list[str], number: str) -> list[str]:
    """The seeded values in the folded wire text; the phone's digits with any separators."""
    found = [v for v in seeded if folded(v) in wire]
    if re.search(r"[\s().\-/]{0,2}".join(number), wire):
        found.append(number)
    return found


@pytest.fixture
def api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        server.default = completion(REPLY, prompt_tokens=400, completion_tokens=30)
        yield server


def cloud_engine(api: FakeOpenAI, store: Store, action: str) -> Engine:
    """Every task to the real openai client on ``action`` (``cloud-masked`` or ``cloud``)."""
    policy = parse_policy(f'[[routes]]\nname = "all"\naction = "{action}"\n')
    settings = Settings(openai_api_key="sk-test", openai_base_url=api.base_url)  # type: ignore[arg-type]
    return Engine(policy, {"local": ScriptedBackend("llama", local=True, model="g"),
                           "cloud": OpenAIBackend(settings, policy.cloud)},
                  default_task_kinds(), Ledger(store))


def test_a_thousand_synthetic_contacts_leave_no_seeded_value_on_the_wire(
        api: FakeOpenAI, sqlite_store: Store) -> None:
    engine = cloud_engine(api, sqlite_store, "cloud-masked")
    seeder = Seeder(2026)
    leaked: list[tuple[int, list[str]]] = []
    for i in range(RECORDS):
        contact, seeded, number = seeder.record(i)
        result = engine.run(Task(kind="email", context=contact, tier="critical",
                                 brief=f"Thank {seeded[0]} for the order"))
        assert result.receipt.egress and result.receipt.egress_entities == ()
        assert result.receipt.masked["first_name"] >= 2
        body = result.output["body"]
        assert body.startswith(f"Hi {seeded[0]},") and seeded[1] in body  # restored
        wire = folded(json.dumps(api.seen[-1].body["messages"], ensure_ascii=False))
        found = _leaks(wire, seeded, number)
        if found:
            leaked.append((i, found))
    assert len(api.seen) == RECORDS
    assert leaked == []


def test_the_leak_check_itself_finds_what_an_unmasked_route_sends(
        api: FakeOpenAI, sqlite_store: Store) -> None:
    """The same check on a plain ``cloud`` route finds every seeded value: it can fail."""
    engine = cloud_engine(api, sqlite_store, "cloud")
    api.default = completion(json.dumps({"subject": "s", "preheader": "p",
                                         "body": "Hi {first_name}, thank you."}))
    seeder = Seeder(7)
    for i in range(len(SCRIPTS)):
        contact, seeded, number = seeder.record(i)
        engine.run(Task(kind="email", context=contact, tier="critical", brief="Thank them"))
        wire = folded(json.dumps(api.seen[-1].body["messages"], ensure_ascii=False))
        assert set(_leaks(wire, seeded, number)) >= {seeded[0], seeded[2], number}
