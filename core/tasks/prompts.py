"""Built-in prompt wording and few-shot examples, per task kind and language.

Base models continue text, so each kind is shown as a few complete examples followed by the open
slot for the new one. Contacts in the examples use placeholders (``{first_name}``) exactly as the
masked contact will, so the model learns to write the placeholder and Baton fills in the value.
A brand's own examples in ``baton.toml`` replace these.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.policy import Example


@dataclass(frozen=True)
class Wording:
    """The labels and instructions of one language."""

    intro: str
    voice: str
    audience: str
    banned: str
    placeholders: str
    json_rule: str
    brief: str
    contact: str
    lead: str
    output: dict[str, str]
    recommend_intro: str
    catalog: str


WORDING: dict[str, Wording] = {
    "en": Wording(
        intro="{brand} writes short, personal marketing copy for its customers.",
        voice="Voice: {tone}.",
        audience="Audience: {audience}.",
        banned="Never use these words: {words}.",
        placeholders=(
            "Contact details appear as placeholders such as {first_name}; write the placeholder "
            "itself, never a made-up value."
        ),
        json_rule="Answer with one JSON object with the keys {keys} and nothing else.",
        brief="Brief",
        contact="Contact",
        lead="Start the {field} with: {lead}",
        output={"email": "Email", "text": "Text", "reply": "Reply",
                "recommendation": "Recommendation"},
        recommend_intro="{brand} recommends products from its catalog that fit each customer.",
        catalog="Catalog",
    ),
    "ja": Wording(
        intro="{brand}は顧客に向けて、短く心のこもったマーケティング文を書きます。",
        voice="トーン: {tone}。",
        audience="対象: {audience}。",
        banned="次の言葉は使わないこと: {words}。",
        placeholders=(
            "顧客情報は {last_name} のようなプレースホルダーで示されます。"
            "値を作らず、そのまま書くこと。"
        ),
        json_rule="キー {keys} を持つ JSON オブジェクトを一つだけ返すこと。",
        brief="依頼",
        contact="顧客",
        lead="{field} は次の言葉で始めること: {lead}",
        output={"email": "メール", "text": "文章", "reply": "返信", "recommendation": "おすすめ"},
        recommend_intro="{brand}はカタログの中から、お客様一人ひとりに合う商品をおすすめします。",
        catalog="カタログ",
    ),
}

LANGUAGES = tuple(WORDING)


def base_language(value: str) -> str:
    """A language code reduced to its base: ``en-US``, ``EN``, ``ja_JP`` -> ``en``, ``ja``."""
    return value.strip().replace("_", "-").split("-")[0].lower()

_EMAIL_EN = [
    Example(
        kind="email",
        language="en",
        brief="Thank them for their first order and suggest the matching care kit.",
        contact={"first_name": "{first_name}", "company": "Northwind Trails",
                 "last_purchase": "Trail Runner 2 shoes"},
        output={
            "subject": "{first_name}, thank you for your first order",
            "preheader": "A small tip to keep your Trail Runner 2 like new",
            "body": (
                "Hi {first_name},\n\nThank you for your first order! To keep your Trail Runner 2 "
                "shoes grippy on wet rock, our Shoe Care Kit cleans and re-proofs them in five "
                "minutes.\n\nHappy trails,"
            ),
        },
    ),
    Example(
        kind="email",
        language="en",
        brief="Invite them back with the autumn collection; no discount.",
        contact={"first_name": "{first_name}", "company": "Blue Harbor Studio",
                 "last_purchase": "Rain Shell jacket"},
        output={
            "subject": "New for autumn, {first_name}",
            "preheader": "Layers that pair with your Rain Shell",
            "body": (
                "Hi {first_name},\n\nThe autumn collection is here. The new Fleece Midlayer "
                "fits right under the Rain Shell you picked last spring, so cold mornings "
                "stay comfortable.\n\nSee you outside,"
            ),
        },
    ),
    Example(
        kind="email",
        language="en",
        brief="Introduce the new Rain Shell jacket for wet spring runs.",
        contact={"first_name": "{first_name}", "company": "Cedar Ridge Guides",
                 "last_purchase": "Merino trail socks"},
        output={
            "subject": "{first_name}, meet the new Rain Shell jacket",
            "preheader": "Made for wet spring runs",
            "body": (
                "Hi {first_name},\n\nMeet the new Rain Shell jacket. It keeps the rain out on "
                "wet spring runs and packs away small when the sun comes back.\n\n"
                "See you on the trail,"
            ),
        },
    ),
    Example(
        kind="email",
        language="en",
        brief="Tell them the Trail Runner 2 shoes are 10% off until Friday.",
        contact={"first_name": "{first_name}", "company": "Lakeside Running Club",
                 "last_purchase": "Merino trail socks"},
        output={
            "subject": "{first_name}, Trail Runner 2 is 10% off until Friday",
            "preheader": "A lighter shoe for your next run",
            "body": (
                "Hi {first_name},\n\nUntil Friday, the Trail Runner 2 shoes are 10% off. They "
                "go well with the Merino trail socks you already own.\n\nHappy running,"
            ),
        },
    ),
    Example(
        kind="email",
        language="en",
        brief="Invite them to the trail-running clinic at the Boulder store on Saturday morning.",
        contact={"first_name": "{first_name}", "company": "Pinecrest Outfitters",
                 "last_purchase": "Trail Runner 2 shoes"},
        output={
            "subject": "{first_name}, join our trail-running clinic on Saturday",
            "preheader": "Saturday morning at the Boulder store",
            "body": (
                "Hi {first_name},\n\nJoin us on Saturday morning at the Boulder store for a "
                "trail-running clinic with our coaches. Bring your Trail Runner 2 shoes and "
                "any questions.\n\nSee you there,"
            ),
        },
    ),
]

_EMAIL_JA = [
    Example(
        kind="email",
        language="ja",
        brief="初めての注文へのお礼と、ケアキットの提案。",
        contact={"last_name": "{last_name}", "company": "北風トレイル",
                 "last_purchase": "トレイルランナー2"},
        output={
            "subject": "{last_name}様、初めてのご注文ありがとうございます",
            "preheader": "トレイルランナー2を長く使うためのひと工夫",
            "body": (
                "{last_name}様\n\n初めてのご注文ありがとうございます。シューケアキットを使えば、"
                "トレイルランナー2の汚れを5分で落とし、防水性を保てます。"
            ),
        },
    ),
    Example(
        kind="email",
        language="ja",
        brief="秋の新作の案内。割引はなし。",
        contact={"last_name": "{last_name}", "company": "青港スタジオ",
                 "last_purchase": "レインシェル"},
        output={
            "subject": "{last_name}様、秋の新作のご案内",
            "preheader": "レインシェルに合う一枚",
            "body": (
                "{last_name}様\n\n秋の新作が届きました。新しいフリースはお持ちのレインシェルの"
                "下にぴったり重ねられ、寒い朝も快適です。"
            ),
        },
    ),
    Example(
        kind="email",
        language="ja",
        brief="雨の日のランに向けた新しいレインシェルを紹介する。",
        contact={"last_name": "{last_name}", "company": "杉並山岳会",
                 "last_purchase": "メリノソックス"},
        output={
            "subject": "{last_name}様、新しいレインシェルのご紹介",
            "preheader": "雨の日のランのための一着",
            "body": (
                "{last_name}様\n\n新しいレインシェルが登場しました。軽く小さくたためるので、"
                "雨の日のランにも気軽に持っていけます。"
            ),
        },
    ),
    Example(
        kind="email",
        language="ja",
        brief="金曜日までトレイルランナー2が10%オフであることを伝える。",
        contact={"last_name": "{last_name}", "company": "湖畔ランニングクラブ",
                 "last_purchase": "シューケアキット"},
        output={
            "subject": "{last_name}様、トレイルランナー2が金曜日まで10%オフ",
            "preheader": "次のランに、軽い一足を",
            "body": (
                "{last_name}様\n\n金曜日まで、トレイルランナー2が10%オフです。お持ちのシューケア"
                "キットで、長くきれいにお使いいただけます。"
            ),
        },
    ),
    Example(
        kind="email",
        language="ja",
        brief="土曜日の朝、福岡店で開くトレイルランニング教室へ招待する。",
        contact={"last_name": "{last_name}", "company": "松原アウトドア",
                 "last_purchase": "トレイルランナー2"},
        output={
            "subject": "{last_name}様、土曜日のトレイルランニング教室へのご招待",
            "preheader": "土曜日の朝、福岡店で開催します",
            "body": (
                "{last_name}様\n\n土曜日の朝、福岡店でトレイルランニング教室を開きます。"
                "お持ちのトレイルランナー2で、ぜひご参加ください。"
            ),
        },
    ),
]

_TEXT_EN = [
    Example(
        kind="text",
        language="en",
        brief="One sentence for a sales rep: why this contact is worth a call today.",
        contact={"first_name": "{first_name}", "company": "Northwind Trails",
                 "last_purchase": "Trail Runner 2 shoes"},
        output={"text": "{first_name} at Northwind Trails just bought Trail Runner 2 shoes and "
                        "may want the care kit that goes with them."},
    ),
]

_TEXT_JA = [
    Example(
        kind="text",
        language="ja",
        brief="営業担当向けに、今日連絡すべき理由を一文で。",
        contact={"last_name": "{last_name}", "company": "北風トレイル",
                 "last_purchase": "トレイルランナー2"},
        output={"text": "北風トレイルの{last_name}様はトレイルランナー2を購入したばかりで、"
                        "ケアキットに関心がありそうです。"},
    ),
]

_REPLY_EN = [
    Example(
        kind="reply",
        language="en",
        brief="My Trail Runner 2 soles are peeling after two months. What can I do?",
        contact={"first_name": "{first_name}", "last_purchase": "Trail Runner 2 shoes"},
        output={"body": "Hi {first_name},\n\nI'm sorry your Trail Runner 2 soles are peeling so "
                        "soon. That is covered by our one-year warranty: reply with a photo and your "
                        "order number and we will send a new pair.\n\nThanks for your patience,"},
    ),
]

_REPLY_JA = [
    Example(
        kind="reply",
        language="ja",
        brief="購入して2か月でトレイルランナー2のソールがはがれてきました。",
        contact={"last_name": "{last_name}", "last_purchase": "トレイルランナー2"},
        output={"body": "{last_name}様\n\nご不便をおかけして申し訳ございません。ソールのはがれは"
                        "1年保証の対象です。写真とご注文番号をお送りいただければ、新しいものをお送り"
                        "します。"},
    ),
]

_RECOMMENDATION_EN = [
    Example(
        kind="recommendation",
        language="en",
        brief="Suggest what to add to their next order.",
        contact={"first_name": "{first_name}", "purchases": ["Trail Runner 2 shoes"]},
        output={"picks": [{"product": "Shoe Care Kit",
                           "reason": "Cleans and re-proofs the Trail Runner 2 they just bought."}],
                "message": "Your Trail Runner 2 will last longer with the Shoe Care Kit."},
    ),
]

_RECOMMENDATION_JA = [
    Example(
        kind="recommendation",
        language="ja",
        brief="次の注文に加える商品を提案。",
        contact={"last_name": "{last_name}", "purchases": ["トレイルランナー2"]},
        output={"picks": [{"product": "シューケアキット",
                           "reason": "購入されたトレイルランナー2のグリップと防水性を保てます。"}],
                "message": "シューケアキットでトレイルランナー2を長くお使いいただけます。"},
    ),
]

BUILTIN_EXAMPLES: dict[tuple[str, str], list[Example]] = {
    ("email", "en"): _EMAIL_EN,
    ("email", "ja"): _EMAIL_JA,
    ("text", "en"): _TEXT_EN,
    ("text", "ja"): _TEXT_JA,
    ("reply", "en"): _REPLY_EN,
    ("reply", "ja"): _REPLY_JA,
    ("recommendation", "en"): _RECOMMENDATION_EN,
    ("recommendation", "ja"): _RECOMMENDATION_JA,
}


# How many examples a prompt shows. A pool holds more (one per kind of brief); a small model
# copies what it is shown, so each brief is shown the examples whose briefs resemble it most.
EXAMPLES_SHOWN = 2


def example_pool(kind: str, language: str, brand_examples: list[Example]) -> list[Example]:
    """The brand's own examples for this kind and language, else the built-in ones."""
    own = [e for e in brand_examples if e.kind == kind and e.language == language]
    return own or BUILTIN_EXAMPLES.get((kind, language), [])


def examples_for(kind: str, language: str, brand_examples: list[Example], brief: str = "",
                 variant: int = 0, shown: int = EXAMPLES_SHOWN) -> list[Example]:
    """The ``shown`` examples of the pool whose briefs share the most words with ``brief`` (ties
    keep the pool's order), most alike first. ``variant`` 1 starts one further down: a second
    attempt is not shown the example the first was most likely to copy."""
    pool = example_pool(kind, language, brand_examples)
    if len(pool) <= shown:
        return pool
    asked = _terms(brief)
    ranked = sorted(pool, key=lambda e: -len(asked & _terms(e.brief)))
    start = variant % (len(pool) - shown + 1)
    return ranked[start:start + shown]


_STOP = frozenset({"the", "and", "for", "with", "them", "their", "they", "our", "your", "you",
                   "this", "that", "from", "into", "are", "was", "will", "has", "have", "its"})


def _terms(text: str) -> set[str]:
    """Words of three letters or more (English and other space-separated languages) and pairs
    of adjacent characters of every run without spaces or ASCII (Japanese)."""
    text = unicodedata.normalize("NFKC", text).lower()
    words = {w for w in re.findall(r"[a-z0-9]{3,}", text) if w not in _STOP}
    for run in re.findall(r"[^\x00-\x7f、。「」・（）\s]+", text):
        words.update(run[i:i + 2] for i in range(len(run) - 1))
    return words
