"""The evaluation set for copy quality, made by a seeded script (no downloads, no model).

Contacts come in the field styles of a HubSpot export, a Salesforce report and a hand-made
spreadsheet, in English and Japanese, with purchase histories drawn from a small catalog. Each
contact is paired with one of the briefs (launch, discount, event, re-engagement, thank-you), in
the contact's language. Every brief carries what a reader of the copy would check it against:
the words that show the copy is about the brief (``about``), the catalog products it names
(``products``) and the claims it makes (``claims``: shipping, discount, free, stock).

``python -m bench.evalset`` prints a summary; ``bench.quality`` runs it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SEED = 20261130

# Catalog: (English name, Japanese name).
CATALOG: list[tuple[str, str]] = [
    ("Kumo Rain Jacket", "クモ・レインジャケット"),
    ("Trail Runner 2 shoes", "トレイルランナー2"),
    ("Summit 40L backpack", "サミット40Lバックパック"),
    ("Ridge trekking poles", "リッジ・トレッキングポール"),
    ("Fleece Midlayer", "フリース・ミッドレイヤー"),
    ("Shoe Care Kit", "シューケアキット"),
    ("Alpine sleeping bag", "アルパイン寝袋"),
    ("Canyon water bottle", "キャニオン・ボトル"),
    ("Merino trail socks", "メリノ・トレイルソックス"),
    ("Headlamp 300", "ヘッドランプ300"),
    ("Basecamp tent", "ベースキャンプ・テント"),
    ("Camp stove", "キャンプストーブ"),
    ("Down vest", "ダウンベスト"),
    ("Hiking boots Granite", "グラナイト登山靴"),
]

# Words that name a kind of product, per language: a mention of one that is not part of a
# catalog name, the brief or the contact's purchases is a product the copy made up.
PRODUCT_TERMS: dict[str, list[str]] = {
    "en": ["jacket", "jackets", "shoes", "shoe", "sneakers", "boots", "boot", "sandals",
           "backpack", "backpacks", "pack", "poles", "pole", "fleece", "midlayer", "sleeping bag",
           "bottle", "socks", "headlamp", "tent", "tents", "stove", "vest", "gloves", "hat",
           "beanie", "shirt", "t-shirt", "pants", "shorts", "leggings", "hoodie", "sweater",
           "coat", "parka", "kayak", "bike", "helmet", "watch", "sunglasses", "compass",
           "hammock", "mug", "cooler", "lantern", "raincoat", "umbrella", "scarf", "mat"],
    "ja": ["ジャケット", "シューズ", "スニーカー", "ブーツ", "サンダル", "バックパック", "リュック",
           "ポール", "フリース", "寝袋", "ボトル", "ソックス", "靴下", "ヘッドランプ", "テント",
           "ストーブ", "ベスト", "手袋", "グローブ", "帽子", "シャツ", "パンツ", "パーカー",
           "コート", "ヘルメット", "時計", "サングラス", "マット", "ランタン", "傘", "靴"],
}


@dataclass(frozen=True)
class Brief:
    kind: str  # launch, discount, event, re-engagement, thank-you
    text: str
    about: tuple[str, ...]  # any one of them shows the copy is about the brief
    products: tuple[str, ...] = ()  # catalog names the brief names
    claims: frozenset[str] = frozenset()  # claims the brief makes


def _b(kind: str, text: str, about: tuple[str, ...], products: tuple[str, ...] = (),
       claims: tuple[str, ...] = ()) -> Brief:
    return Brief(kind, text, about, products, frozenset(claims))


BRIEFS: dict[str, list[Brief]] = {
    "en": [
        _b("launch", "Introduce our new waterproof running jacket, the Kumo Rain Jacket.",
           ("Kumo", "jacket"), ("Kumo Rain Jacket",)),
        _b("launch", "Announce the new Basecamp tent: sets up in three minutes, sleeps two.",
           ("Basecamp", "tent"), ("Basecamp tent",)),
        _b("launch", "Introduce the Headlamp 300, our brightest headlamp yet.",
           ("Headlamp",), ("Headlamp 300",)),
        _b("launch", "Present the new Down vest for cold mornings on the trail.",
           ("Down vest", "vest"), ("Down vest",)),
        _b("discount", "Offer 20% off the Summit 40L backpack this week.",
           ("Summit", "backpack"), ("Summit 40L backpack",), ("discount",)),
        _b("discount", "Tell them the Fleece Midlayer is 15% off until Sunday.",
           ("Fleece", "midlayer"), ("Fleece Midlayer",), ("discount",)),
        _b("discount", "Free shipping on every order over $50 this weekend.",
           ("shipping",), (), ("free", "shipping", "price")),
        _b("discount", "Members save 10% on Merino trail socks this month.",
           ("Merino", "socks"), ("Merino trail socks",), ("discount",)),
        _b("event", "Invite them to our Trail Day in Portland on Saturday, May 3.",
           ("Trail Day",)),
        _b("event", "Invite them to a free repair workshop at the Seattle store next Thursday.",
           ("workshop", "repair"), (), ("free",)),
        _b("event", "Invite them to the spring camping night with a talk on lightweight packing.",
           ("camping night", "camping"),),
        _b("event", "Invite them to join the autumn group hike on October 12.",
           ("group hike", "hike"),),
        _b("re-engagement", "We have not seen them in a while; show them the Ridge trekking poles.",
           ("Ridge", "poles"), ("Ridge trekking poles",)),
        _b("re-engagement", "Invite them back to see what is new for spring hiking.",
           ("spring hiking", "hiking"),),
        _b("re-engagement", "Remind them the Canyon water bottle keeps drinks cold for 24 hours.",
           ("Canyon", "bottle"), ("Canyon water bottle",)),
        _b("re-engagement", "Ask whether the Alpine sleeping bag is still on their list for winter.",
           ("Alpine", "sleeping bag"), ("Alpine sleeping bag",)),
        _b("thank-you", "Thank them for their recent order and suggest the Shoe Care Kit.",
           ("Shoe Care Kit", "care kit"), ("Shoe Care Kit",)),
        _b("thank-you", "Thank them for five years as a customer.",
           ("five years", "5 years"),),
        _b("thank-you", "Thank them for their review of our gear.",
           ("review",),),
        _b("thank-you", "Thank them for joining the loyalty club and welcome them.",
           ("loyalty club", "club"),),
        _b("launch", "Introduce the Camp stove: boils water in three minutes.",
           ("Camp stove", "stove"), ("Camp stove",)),
        _b("event", "Invite them to the Granite boot fitting day at our Denver store.",
           ("Granite", "fitting"), ("Hiking boots Granite",)),
    ],
    "ja": [
        _b("launch", "新しい防水ジャケット「クモ・レインジャケット」を紹介する。",
           ("クモ", "ジャケット"), ("クモ・レインジャケット",)),
        _b("launch", "3分で設営できる新しいベースキャンプ・テントを紹介する。",
           ("ベースキャンプ", "テント"), ("ベースキャンプ・テント",)),
        _b("launch", "最も明るいヘッドランプ300の発売を知らせる。",
           ("ヘッドランプ",), ("ヘッドランプ300",)),
        _b("discount", "今週はサミット40Lバックパックが20%オフであることを伝える。",
           ("サミット", "バックパック"), ("サミット40Lバックパック",), ("discount",)),
        _b("discount", "日曜日までフリース・ミッドレイヤーが15%オフ。",
           ("フリース",), ("フリース・ミッドレイヤー",), ("discount",)),
        _b("event", "5月3日(土)のトレイルデーへ招待する。", ("トレイルデー",)),
        _b("event", "来週木曜日に札幌店で開く無料の修理ワークショップへ招待する。",
           ("ワークショップ", "修理"), (), ("free",)),
        _b("re-engagement", "しばらくご来店のないお客様に、リッジ・トレッキングポールを紹介する。",
           ("リッジ", "トレッキングポール", "ポール"), ("リッジ・トレッキングポール",)),
        _b("re-engagement", "春の山歩きに向けた新商品を見に来てもらう。", ("新商品", "春", "山歩き")),
        _b("thank-you", "最近のご注文へのお礼と、シューケアキットの提案。",
           ("シューケアキット", "ケアキット"), ("シューケアキット",)),
        _b("thank-you", "5年間のご愛顧へのお礼。", ("5年", "愛顧")),
        _b("thank-you", "ロイヤルティクラブへのご入会のお礼。", ("クラブ", "入会")),
    ],
}

EN_FIRST = ["Maya", "Tomás", "Zoë", "Ayşe", "Çağrı", "İlkay", "Øyvind", "Chloé", "José", "Liam",
            "Sofía", "Noah", "Amélie", "Björn", "Emma", "Olivia", "Mateo", "Ines", "Nora", "Luca",
            "Hannah", "Kai", "Léa", "Ömer", "Jonas", "Priya", "Ada", "Ezra", "Mila", "Aurélien"]
EN_LAST = ["Lindqvist", "Herrera", "Yılmaz", "Öztürk", "Dubois", "Müller", "García", "O'Brien",
           "Nguyen", "Kowalski", "Rossi", "Smith", "Johansson", "Fernández", "Şahin", "Lefèvre",
           "Novák", "Brown", "Schröder", "Costa"]
JA_LAST = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田",
           "山田", "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水"]
JA_FIRST = ["花子", "太郎", "陽菜", "蓮", "結衣", "大翔", "美咲", "翔太", "さくら", "健"]
COMPANIES = ["Fjord & Field", "Sierra Supply", "Blue Harbor Studio", "Northwind Trails",
             "Ridge Runners Club", "Summit Scouts", ""]
JA_COMPANIES = ["山風アウトドア", "北風トレイル", "青港スタジオ", ""]
DOMAINS = ["example.net", "example.org", "example.com"]

# Column names of each export style: (first, last, email, phone, company, purchases, language)
STYLES: dict[str, tuple[str, ...]] = {
    "hubspot": ("firstname", "lastname", "email", "phone", "company", "purchases", "hs_language"),
    "salesforce": ("FirstName", "LastName", "Email", "Phone", "Account.Name", "purchases",
                   "Language__c"),
    "spreadsheet": ("First Name", "Last Name", "Email Address", "Phone Number", "Company Name",
                    "Past purchases", "Language"),
}


@dataclass(frozen=True)
class Case:
    """One contact (in its export style) and the brief it is written for."""

    id: str
    language: str
    style: str
    contact: dict[str, Any]
    brief: Brief
    first_name: str
    last_name: str
    email: str
    phone: str
    purchases: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class EvalSet:
    cases: list[Case]
    catalog: dict[str, list[str]]  # per language
    product_terms: dict[str, list[str]]


def make(n: int = 240, seed: int = SEED, ja_share: float = 0.3) -> EvalSet:
    """``n`` cases; the same seed gives the same set."""
    rnd = random.Random(seed)
    catalog = {"en": [en for en, _ in CATALOG], "ja": [ja for _, ja in CATALOG]}
    cases = []
    for i in range(n):
        language = "ja" if rnd.random() < ja_share else "en"
        style = ("hubspot", "salesforce", "spreadsheet")[i % 3]
        cols = STYLES[style]
        if language == "ja":
            first, last = rnd.choice(JA_FIRST), rnd.choice(JA_LAST)
            email = f"user{i}@example.jp"
            phone = f"090-{rnd.randint(1000, 9999)}-{rnd.randint(1000, 9999)}"
            company = rnd.choice(JA_COMPANIES)
        else:
            first, last = rnd.choice(EN_FIRST), rnd.choice(EN_LAST)
            email = f"{first.lower()}.{i}@{rnd.choice(DOMAINS)}".replace("'", "")
            phone = f"+1 415 555 {rnd.randint(1000, 9999)}"
            company = rnd.choice(COMPANIES)
        purchases = tuple(rnd.sample(catalog[language], rnd.randint(0, 3)))
        brief = BRIEFS[language][i % len(BRIEFS[language])]
        contact: dict[str, Any] = {cols[0]: first, cols[1]: last, cols[2]: email, cols[3]: phone}
        if company:
            contact[cols[4]] = company
        if purchases:
            contact[cols[5]] = list(purchases) if style != "spreadsheet" else "; ".join(purchases)
        contact[cols[6]] = language
        cases.append(Case(f"c{i:03d}", language, style, contact, brief, first, last, email,
                          phone, purchases))
    return EvalSet(cases, catalog, PRODUCT_TERMS)


def main() -> None:
    data = make()
    kinds = sorted({c.brief.kind for c in data.cases})
    print(f"{len(data.cases)} cases: "
          f"{sum(c.language == 'en' for c in data.cases)} English, "
          f"{sum(c.language == 'ja' for c in data.cases)} Japanese; "
          f"{sum(len(b) for b in BRIEFS.values())} briefs ({', '.join(kinds)}); "
          f"catalog of {len(CATALOG)} products")


if __name__ == "__main__":
    main()
