"""The guards for what copy says (core/tasks/copycheck.py), each shown failing on the copy a small
model was seen to write and passing the copy a marketer would send."""

from __future__ import annotations

import pytest

from core.tasks.copycheck import (
    PRODUCT_TERMS,
    BriefGuard,
    ClaimGuard,
    ExampleGuard,
    IdentifierGuard,
    ProductGuard,
    brief_topics,
    context_products,
    identifiers,
)

CATALOG = ("Kumo Rain Jacket", "Trail Runner 2 shoes", "Summit 40L backpack", "Shoe Care Kit",
           "Ridge trekking poles")
EN = PRODUCT_TERMS["en"]
JA = PRODUCT_TERMS["ja"]


def email(body: str, subject: str = "News") -> dict[str, str]:
    return {"subject": subject, "preheader": "", "body": body}


@pytest.mark.parametrize(("brief", "topics"), [
    ("Introduce our new waterproof running jacket, the Kumo Rain Jacket.",
     ["Kumo Rain Jacket", "Kumo"]),
    ("Introduce our new waterproof running jacket.", ["jacket"]),
    ("Invite them to the Granite boot fitting day at our Denver store.", ["Granite"]),
    ("We have not seen them; show them the Ridge trekking poles.", ["Ridge"]),
    ("Announce the Black Friday sale on boots.", ["boots"]),  # a holiday is not the product
    ("Suggest boots as a Christmas gift to hikers heading to Colorado.", ["boots"]),
    ("Present the new Down vest for cold mornings.", ["Down vest", "Down"]),
    ("Invite them to our Trail Day in Portland on Saturday, May 3.",
     ["Trail Day", "Portland"]),
    ("Invite them to a repair workshop. Tone: friendly.", ["repair", "workshop"]),
    ("A short, friendly note that suggests a next step based on their recent purchases.", []),
    ("新しい防水ジャケット「クモ・レインジャケット」を紹介する。", ["ジャケット"]),
    ("ロイヤルティクラブへのご入会のお礼。", ["ロイヤルティクラブ", "入会"]),
])
def test_what_a_brief_is_about(brief: str, topics: list[str]) -> None:
    language = "ja" if not brief.isascii() else "en"
    found = brief_topics(brief, language, CATALOG, PRODUCT_TERMS[language])
    assert [t for t in found if t in topics] == topics and (found or not topics)
    if "Granite" in brief or "Ridge" in brief:
        assert "boot" not in found and "trekking" not in found  # a kind or a description alone
    if not topics:
        assert found == []  # nothing but instruction words: coverage is not checked


def test_copy_about_something_else_fails_the_brief() -> None:
    topics = tuple(brief_topics("Introduce our new waterproof running jacket, the Kumo Rain "
                                "Jacket.", "en", CATALOG, EN))
    guard = BriefGuard(topics)
    off = email("Hi Maya, the new hiking boots have arrived!")
    assert guard.check(off) == ["brief: the copy does not mention what the brief is about "
                                "(Kumo Rain Jacket, Kumo, Rain)"]
    assert guard.check(email("Hi Maya, the Kumo is here: light and dry.")) == []
    assert BriefGuard(()).check(off) == []  # nothing to tell: not checked
    ja = BriefGuard(("ロイヤルティクラブ", "5年間"))
    assert ja.check(email("佐藤様\n\nクラブへようこそ。")) == []  # a part of the compound
    assert ja.check(email("佐藤様\n\n5年のご愛顧に感謝します。")) == []
    assert ja.check(email("佐藤様\n\n新商品のご案内です。")) != []


def test_products_outside_the_catalog_brief_and_purchases_are_refused() -> None:
    guard = ProductGuard(CATALOG, ("Merino trail socks",), EN,
                         "Introduce the Kumo Rain Jacket.")
    made_up = email("The Kumo trail running shoes have arrived! We've got the perfect pair of "
                    "hiking boots for you.")
    assert guard.check(made_up) == [
        "products: names 'boots', which is not in the catalog, the brief or the contact's "
        "purchases",
        "products: names 'shoes', which is not in the catalog, the brief or the contact's "
        "purchases"]
    fine = email("The Kumo Rain Jacket is here. It goes well with your Summit pack, your "
                 "socks and the Shoe Care Kit.")
    assert guard.check(fine) == []  # catalog names, a short name, a purchase's word
    assert guard.check(email("We will have a cooler in case of rain.")) == [
        "products: names 'cooler', which is not in the catalog, the brief or the contact's "
        "purchases"]
    assert ProductGuard(CATALOG, (), EN, "Tell them about our new boots.").check(
        email("Our new boots are in.")) == []  # the brief itself names them
    assert ProductGuard(CATALOG, (), JA, "ジャケットの紹介").check(
        email("新しいサンダルが入荷しました。")) != []


@pytest.mark.parametrize(("brief", "copy", "faults"), [
    ("Introduce the Kumo Rain Jacket.", "Your order has shipped today.", ["shipping"]),
    ("Introduce the Kumo Rain Jacket.", "Enjoy 20% off this week.", ["discount", "20%"]),
    ("Introduce the Kumo Rain Jacket.", "Delivery is free of charge.", ["free"]),
    ("Introduce the Kumo Rain Jacket.", "Last chance: limited stock!", ["scarcity"]),
    ("Offer 20% off the Summit backpack.", "Take 20% off the Summit backpack.", []),
    ("Offer 20% off the Summit backpack.", "Take 30% off the Summit backpack.", ["30%"]),
    ("Invite them back; no discount.", "Save 10% today.", ["discount", "10%"]),
    ("Free shipping on every order.", "Shipping is free of charge this weekend.", []),
    ("Feel free to reply.", "Feel free to reply with questions.", []),
])
def test_claims_only_as_the_brief_makes_them(brief: str, copy: str, faults: list[str]) -> None:
    found = ClaimGuard("en", brief).check(email(copy))
    assert len(found) == len(faults) and all(f in v for f, v in zip(faults, found, strict=True))


def test_japanese_claims() -> None:
    guard = ClaimGuard("ja", "新しいジャケットの紹介。")
    assert [v.split("(")[1].split(")")[0] for v in guard.check(email(
        "本日発送しました。送料無料、ケアキットをプレゼント。"))] == ["shipping", "free"]
    assert ClaimGuard("ja", "今週は20%オフ。").check(email("20%オフです。")) == []
    assert ClaimGuard("ja", "割引なしで新作を紹介。").check(email("今なら割引します。")) != []


def test_the_contacts_identifiers_never_appear() -> None:
    emails, phones = identifiers({"email": "Maya.L@example.net", "phone": "+1 (415) 555-0142",
                                  "first_name": "Maya"})
    guard = IdentifierGuard(emails, phones)
    assert guard.check(email("Hi Maya,", subject="maya.l@example.net, news")) == [
        "identifiers: the copy shows the contact's email address"]
    assert guard.check(email("Call us at 415 555 0142.")) == [
        "identifiers: the copy shows the contact's phone number"]
    assert guard.check(email("Hi Maya, reply to this email.")) == []


def test_copied_example_sentences_are_caught_unless_the_brief_says_them() -> None:
    example = ('{"body": "Hi {first_name},\\n\\nThe autumn collection is here. The new Fleece '
               'Midlayer fits right under the Rain Shell you picked last spring."}')
    guard = ExampleGuard((example,), "Introduce the Kumo Rain Jacket. Maya")
    copied = email("Hi Maya,\n\nThe new Fleece Midlayer fits right under the Rain Shell you "
                   "picked last spring.")
    assert guard.check(copied)[0].startswith("examples: copies a few-shot example")
    assert guard.check(email("Hi Maya,\n\nThe autumn collection is here.")) == []  # 5 words
    quoted = ExampleGuard((example,), "Say: the new Fleece Midlayer fits right under the Rain "
                                      "Shell you picked last spring.")
    assert quoted.check(copied) == []


def test_context_products_read_every_shape() -> None:
    assert context_products({"purchases": ["A", {"name": "B"}], "last_purchase": "C; D",
                             "catalog": [{"sku": "E"}], "other": "F"}) == ["A", "B", "C", "D", "E"]


def test_numbers_come_from_the_brief_or_the_contact() -> None:
    guard = ClaimGuard("en", "Invite them to the group hike on October 12.", "Summit 40L backpack")
    assert guard.check(email("Join the hike on October 12 with your Summit 40L pack.")) == []
    assert guard.check(email("Join the hike on October 12 at 9 am, tickets $15.")) == [
        "claims: says '$15' (price), which the brief does not",
        "claims: gives the number 15, which the brief does not"]
    ja = ClaimGuard("ja", "5年間のご愛顧へのお礼。")
    assert ja.check(email("5年間ありがとうございます。")) == []
    assert ja.check(email("100万円の資金調達をしました。")) != []


def test_the_when_of_a_brief_is_not_its_subject() -> None:
    topics = brief_topics("Invite them to join the autumn group hike on October 12.", "en",
                          CATALOG, EN)
    assert topics == ["group", "hike"]
    assert BriefGuard(tuple(topics)).check(email("Hi José, the fall collection is here!")) != []


@pytest.mark.parametrize("copy", [
    "Half off everything this week.", "Take $40 off your next order.", "Only five left, so hurry!",
    "Your order is heading your way and arrives tomorrow.", "Get it fr\u200bee of charge.",
    "Prices drop at midnight; grab a bargain.",
])
def test_reworded_claims_are_still_claims(copy: str) -> None:
    assert ClaimGuard("en", "Introduce the Kumo Rain Jacket.", "Summit 40L backpack").check(
        email(copy)) != []


@pytest.mark.parametrize("copy", ["数量限定です。", "期間限定のご案内。", "送料はかかりません。",
                                  "お値段は九千八百円です。", "残り僅かです。"])
def test_reworded_japanese_claims_are_still_claims(copy: str) -> None:
    assert ClaimGuard("ja", "新しいジャケットの紹介。").check(email(copy)) != []


@pytest.mark.parametrize(("language", "brief", "copy"), [
    ("en", "Avoid any discount talk; skip the sale.", "It is on sale at a discount."),
    ("en", "We will not be offering any discount.", "Enjoy the discount."),
    ("ja", "送料無料とは書かないこと。", "送料無料です。"),
    ("ja", "割引については触れないこと。", "割引価格です。"),
])
def test_a_brief_that_forbids_a_claim_does_not_allow_it(language: str, brief: str,
                                                         copy: str) -> None:
    assert ClaimGuard(language, brief).check(email(copy)) != []


@pytest.mark.parametrize(("language", "copy"), [
    ("en", "Autumn is on its way. Save the date! It is a big deal for us."),
    ("en", "Feel free to reply; we have delivered gear to hikers for years."),
    ("ja", "最新情報をお届けします。お得意様へ。オフィスでもオフロードでも。"),
    ("ja", "セールスチームより。プレゼントにもぴったりです。"),
])
def test_ordinary_phrases_are_not_claims(language: str, copy: str) -> None:
    assert ClaimGuard(language, "Introduce the new collection.").check(email(copy)) == []


def test_the_brands_own_numbers_and_number_words_may_be_repeated() -> None:
    guard = ClaimGuard("en", "Thank them for five years as a customer.",
                       "— The 7 Peaks team Written with AI in 2025.")
    assert guard.check(email("Five years! Thank you for 5 years.\n\n— The 7 Peaks team")) == []


def test_product_words_in_their_forms_and_not_inside_other_words() -> None:
    guard = ProductGuard(CATALOG, (), EN, "Introduce the Kumo Rain Jacket.")
    for copy in ("New hiking-boots are in.", "A sneaker for you.", "New bo\u200bots."):
        assert guard.check(email(copy)) != [], copy
    ja = ProductGuard(("クモ・レインジャケット",), (), JA, "ジャケットの紹介")
    assert ja.check(email("ベストシーズンの到来です。")) == []
    assert ja.check(email("新しいベストもあります。")) != []


def test_every_phone_field_is_an_identifier() -> None:
    _, phones = identifiers({"phone": "+1 415 555 0123", "Work Phone": "+1 212 555 0199",
                             "携帯電話": "090-1234-5678"})
    assert len(phones) == 3
    assert IdentifierGuard((), phones).check(email("Call your rep on 212 555 0199.")) != []


def test_a_greeting_is_not_a_proper_name_topic_and_forms_of_a_word_count() -> None:
    topics = tuple(brief_topics("Invite them to our Trail Day in Portland.", "en", CATALOG, EN))
    assert BriefGuard(topics).check(email("Have a great day, loyal customer!")) != []
    hike = BriefGuard(tuple(brief_topics("Invite them to a guided hike next weekend.", "en",
                                         CATALOG, EN)))
    assert hike.check(email("Come hiking with us!")) == []


def test_purchase_history_columns_are_read_as_purchases() -> None:
    from core.contacts import canonical_name

    assert {canonical_name(c) for c in ("Purchases", "Past purchases", "Purchase History",
                                        "purchases")} == {"purchases"}


def test_a_number_inside_japanese_text_is_a_number() -> None:
    guard = ClaimGuard("ja", "3分で設営できるテントを紹介する。", "ヘッドランプ300")
    assert guard.check(email("寝袋を10倍にアップさせました。")) == [
        "claims: gives the number 10, which the brief does not"]
    assert guard.check(email("3分で設営でき、ヘッドランプ300にも合います。")) == []


def test_the_briefs_instruction_is_not_copy() -> None:
    guard = BriefGuard(("Rain Cover",), "Thank them for their recent purchase and suggest the "
                                        "Rain Cover for their pack.")
    assert guard.check(email("Hi Maya, thank you! We suggest the Rain Cover for their pack.")) == [
        "brief: repeats the brief's instruction ('suggest the rain cover for')"]
    assert guard.check(email("Hi Maya, thank you for your recent purchase. The Rain Cover keeps "
                             "your pack dry.")) == []


def test_promised_dispatch_is_a_shipping_claim() -> None:
    assert ClaimGuard("en", "Suggest the Rain Cover.").check(
        email("We will be sending out the Rain Cover in the next few days.")) != []


def test_a_currency_sign_alone_is_a_price_and_markup_is_not_copy() -> None:
    from core.tasks.copycheck import MarkupGuard

    guard = ClaimGuard("en", "Introduce the Down vest.")
    assert guard.check(email("We are selling down vests at $ <u>$</u>.")) == [
        "claims: says '$' (price), which the brief does not"]
    assert ClaimGuard("en", "Free shipping over $50.").check(email("Orders over $50 ship free")) == []
    assert ClaimGuard("ja", "新しいベストの紹介。").check(email("価格は￥です")) != []
    assert MarkupGuard().check(email("Hi Nora, <strong>new</strong>")) == [
        "markup: an HTML tag in plain-text copy ('<strong>')"]
    assert MarkupGuard().check(email("Hi Nora, 3 < 5 and 7 > 2; <3")) == []
    assert MarkupGuard().check(email("<svg/onload=alert(1)>")) != []
    assert MarkupGuard().check(email("<!-- hidden -->")) != []


def test_numbers_spelled_out_before_a_unit_are_numbers_too() -> None:
    """Generated without digits, a small model writes the invented price in words."""
    jacket = ClaimGuard("en", "Announce the Kumo Rain Jacket.")
    assert jacket.check(email("Yours for forty-nine dollars, three days only.")) != []
    assert jacket.check(email("Take twenty percent off.")) != []
    assert jacket.check(email("It is one of our favourites, and two pockets keep things dry.")) == []
    years = ClaimGuard("en", "Thank them for five years as a customer.")
    assert years.check(email("Thank you for five years with us.")) == []
    assert ClaimGuard("ja", "新しいジャケットの紹介。").check(email("二十ドルから、三日間だけ")) != []
    assert ClaimGuard("ja", "5年間のご愛顧へのお礼。").check(email("五年間ありがとうございます")) == []


def test_a_catalog_written_in_lower_case_keeps_its_short_names() -> None:
    topics = tuple(brief_topics("Introduce the kumo rain jacket.", "en", ("kumo rain jacket",), EN))
    assert BriefGuard(topics).check(email("Hi Ann, meet the Kumo: light and dry.")) == []


def test_letters_and_digits_run_together_are_a_code_the_brief_must_give() -> None:
    guard = ClaimGuard("en", "Introduce the Headlamp 300.", "Summit 40L backpack")
    assert guard.check(email("Our brightest headlamp yet. ⛹a8b471")) == [
        "claims: gives the code 'a8b471', which the brief does not"]
    assert guard.check(email("It fits your Summit 40L backpack.")) == []  # the catalog's own
    assert guard.check(email("Twice as bright: 2x the light.")) != []
