import pytest

from core.policy import BrandVoice
from core.tasks.guards import (
    BannedWordsGuard,
    DisclosureGuard,
    LengthGuard,
    LinkGuard,
    PlaceholderGuard,
    SchemaGuard,
    run_guards,
)
from core.tasks.kinds import EMAIL, shorten


def test_schema_guard_reports_missing_and_extra_fields() -> None:
    guard = SchemaGuard(EMAIL.schema(BrandVoice()))
    found = guard.check({"subject": "Hi", "body": 3, "extra": "x"})
    assert any("'preheader' is a required property" in v for v in found)
    assert any("body: 3 is not of type 'string'" in v for v in found)
    assert any("Additional properties" in v for v in found)
    assert guard.check({"subject": "a", "preheader": "b", "body": "c"}) == []


def test_schema_failure_stops_the_other_guards() -> None:
    guards = EMAIL.guards(BrandVoice(sign_off="— Team"))
    found = run_guards(guards, {"subject": 1})
    assert found and all(v.startswith("schema:") for v in found)


def test_length_guard() -> None:
    guard = LengthGuard({"subject": 10})
    assert guard.check({"subject": "x" * 11}) == ["length: subject has 11 characters, limit 10"]
    assert guard.check({"subject": "  "}) == ["length: subject is empty"]
    assert guard.check({"subject": "ok"}) == []


def test_banned_words_whole_words_and_cjk_substrings() -> None:
    guard = BannedWordsGuard(["elevate", "最高"])
    assert guard.check({"body": "Elevate your hikes"}) == ["banned_words: uses 'elevate'"]
    assert guard.check({"body": "elevated trails"}) == []
    assert guard.check({"body": "これは最高です"}) == ["banned_words: uses '最高'"]


def test_links_only_on_allowed_domains() -> None:
    guard = LinkGuard(["example.com"])
    assert guard.check({"body": "See https://shop.example.com/boots and www.example.com"}) == []
    found = guard.check({"body": "Claim it at https://evil.example.net/x or http://example.com.evil.io"})
    assert len(found) == 2


def test_disclosure_required() -> None:
    guard = DisclosureGuard("body", ["Written with AI assistance."])
    assert guard.check({"body": "Hello"}) == ["disclosure: body lacks 'Written with AI assistance.'"]
    assert guard.check({"body": "Hello\n\nWritten with AI assistance."}) == []


def test_invented_placeholders_are_flagged() -> None:
    assert PlaceholderGuard().check({"body": "Hi {first_name}"}) == [
        "placeholders: unresolved {first_name}"
    ]


def test_finish_appends_sign_off_and_disclosure_once() -> None:
    brand = BrandVoice(sign_off="— Team", ai_disclosure="Written with AI assistance.")
    done = EMAIL.finish({"subject": "s", "preheader": "p", "body": "Hi"}, brand, "en")
    assert done["body"] == "Hi\n\n— Team\n\nWritten with AI assistance."
    assert EMAIL.finish(done, brand, "en") == done


def test_schema_reserves_room_for_the_sign_off() -> None:
    brand = BrandVoice(sign_off="— Team", max_body_chars=100)
    assert EMAIL.schema(brand)["properties"]["body"]["maxLength"] == 100 - len("— Team") - 2


def test_finish_shortens_long_subjects_at_a_word_boundary_but_never_the_body() -> None:
    brand = BrandVoice(max_subject_chars=20, max_body_chars=50)
    done = EMAIL.finish({"subject": "Maya, your Summit backpack is ready", "preheader": "p",
                         "body": "x" * 60}, brand, "en")
    assert done["subject"] == "Maya, your Summit…"
    assert len(done["subject"]) <= 20
    assert done["body"] == "x" * 60
    assert shorten("short", 20) == "short"


@pytest.mark.parametrize(("text", "complaint"), [
    ("claim it at evil.example/claim", "evil.example/claim is not on an allowed domain"),
    ("see //evil.com/x", "//evil.com/x is not on an allowed domain"),
    ("mail mailto:bob@evil.com", "mailto:bob@evil.com is not on an allowed domain"),
    ("write to bob@evil.org", "bob@evil.org is not on an allowed domain"),
    ("visit evil.com today", "evil.com is not on an allowed domain"),
    ("click javascript:alert(1)", "uses the javascript: scheme"),
    ("open data:text/html;base64,PHNjcmlwdD4=", "uses the data: scheme"),
])
def test_links_in_every_form_are_checked(text: str, complaint: str) -> None:
    assert any(complaint in v for v in LinkGuard(["example.com"]).check({"body": text}))


@pytest.mark.parametrize("text", [
    "see https://shop.example.com/boots", "mail mailto:help@example.com", "write help@example.com",
    "Note: bring boots", "at 10:30 on Node.js, e.g. version 3.5", "Ratio 1:2",
])
def test_allowed_links_and_ordinary_text_pass(text: str) -> None:
    assert LinkGuard(["example.com"]).check({"body": text}) == []


@pytest.mark.parametrize("text", [
    "https://evil.com\\@example.com", "//evil.com\\@example.com", "https://evil.com\\.example.com/x",
    "mailto:spy@evil.com?cc=@example.com", "mailto:spy@evil.com,hi@example.com",
    "mailto:?to=spy@evil.com&cc=hi@example.com", "www.evil.page", "evil.tv", "example.com.evil.page",
    "Read more...evil.com", "1.2.3.4/x", "ms-msdt:/id", "skype:bob", "javascript :alert(1)",
])
def test_links_found_by_an_adversarial_read_are_refused(text: str) -> None:
    """Browsers read a backslash as a slash; a mailto reaches every recipient; www. is a link
    whatever its ending."""
    assert LinkGuard(["example.com"]).check({"body": text})


@pytest.mark.parametrize("text", ["Data: 5 items", "Prices from $3.50 to $12.99.",
                                  "mailto:help@example.com?cc=sales@example.com",
                                  "www.example.com/boots", "Version 1.2.3.4 is out"])
def test_ordinary_copy_and_the_brands_own_links_still_pass(text: str) -> None:
    assert LinkGuard(["example.com"]).check({"body": text}) == []
