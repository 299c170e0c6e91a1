"""Guards for what copy *says*: that it is about its brief, names only products the brand sells
or the contact bought, makes no claim the brief did not make, quotes no few-shot example and
shows no contact identifier.

A small base model writes fluent copy about the wrong thing ("The Kumo trail running shoes have
arrived! We've got the perfect pair of hiking boots" for a jacket launch), copies its examples
word for word, and tells a customer her order "was shipped". These guards catch that before any
write-back; what fails is regenerated, escalated by the policy or refused, never written.

Text is compared folded (NFKC, case-folded), whole words for scripts with spaces and substrings
for Japanese, Chinese and Korean.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from core.privacy import PLACEHOLDER_RE

# Words that name a kind of product, per language. A brand adds its own in ``baton.toml``
# (``[brand] product_terms``); its catalog names count as products too.
PRODUCT_TERMS: dict[str, tuple[str, ...]] = {
    "en": ("jacket", "shoe", "shoes", "sneakers", "boots", "boot", "sandals", "backpack", "pack",
           "poles", "fleece", "midlayer", "sleeping bag", "bottle", "socks", "headlamp", "tent",
           "stove", "vest", "gloves", "hat", "beanie", "shirt", "t-shirt", "pants", "shorts",
           "leggings", "hoodie", "sweater", "coat", "parka", "kayak", "bike", "helmet",
           "sunglasses", "hammock", "mug", "lantern", "raincoat", "umbrella", "scarf",
           "bag", "kit", "trainers", "jeans", "skirt", "gaiters", "crampons", "water filter",
           "sneaker", "sandal", "sleeping pad", "harness", "rope", "binoculars", "compass",
           "cooler", "mat", "camp chair", "trekking poles"),
    "ja": ("ジャケット", "シューズ", "スニーカー", "ブーツ", "サンダル", "バックパック", "リュック",
           "ポール", "フリース", "寝袋", "ボトル", "ソックス", "靴下", "ヘッドランプ", "テント",
           "ストーブ", "ベスト", "手袋", "グローブ", "帽子", "シャツ", "パンツ", "パーカー", "コート",
           "ヘルメット", "時計", "サングラス", "マット", "ランタン", "傘", "靴", "くつ", "バッグ", "キット",
           "スパッツ", "アイゼン"),
}

# Claims copy may make only when its brief makes them: (claim, patterns) per language. A brief
# authorizes a claim when one of its patterns occurs in the brief, not negated ("no discount").
CLAIMS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("shipping", r"\b(?:shipped|ships (?:today|tomorrow|now|free|in)|shipping (?:today|now)|"
                     r"dispatched|on (?:its|their) way to you|heading your way|"
                     r"(?:order|package|parcel|delivery) (?:is|was|has been|will be) "
                     r"(?:on|sent|delivered|shipped|out)|out for delivery|tracking number|"
                     r"(?:was|been|be) delivered|arrives? (?:today|tomorrow|on \w+day)|"
                     r"(?:will|'ll|are|am|is) (?:be )?(?:sending|shipping|send|ship)(?: out)?|"
                     r"in the next few days)\b"),
        ("discount", r"\d+ ?%(?= ?(?:off|discount|savings?))|\bpercent off\b|\bdiscount\w*|"
                     r"\bon sale\b|\b(?:the|our|big|summer|winter|spring|autumn|flash) sale\b|"
                     r"\bsave (?:\d|\$|up to|big|on|more)|\bsavings?\b|\bcoupon\b|"
                     r"\bpromo(?:tion(?:al)?)? code\b|\bhalf (?:price|off)\b|\b\$\d+ off\b|"
                     r"\boff (?:the|your) (?:price|order)\b|\bcheaper\b|\bbargain\b|"
                     r"\bprices? (?:drop|cut|fall)\w*|\b(?:great|best|special) deals?\b"),
        ("free", r"\bfree (?:of charge|shipping|delivery|gift|trial|returns?)\b|\bfor free\b|"
                 r"\b(?:is|are|it's|they're) (?:completely |totally )?free\b|"
                 r"\bcomplimentary\b|\bat no (?:extra )?(?:cost|charge)\b|\bno charge\b"),
        ("scarcity", r"\b(?:last chance|limited (?:stock|time|edition|offer)|selling (?:out|fast)|"
                     r"sold out|only (?:\d+|one|two|three|four|five|a few) left|hurry|"
                     r"while (?:stocks|supplies) last|ends (?:today|tonight|soon|at midnight))\b"),
        ("price", r"[$€£¥](?:\s?\d+(?:[.,]\d+)*)?|\d\s?(?:usd|eur|gbp|dollars?|euros?)\b"),
    ),
    "ja": (
        ("shipping", r"発送|出荷|お届けしました|配送しました|配送いたしました|お届け済"),
        ("discount", r"\d+ ?[%％円] ?(?:オフ|引き)|割引|(?<![ァ-ヺー])セール(?!ス)|クーポン|値下げ|"
                     r"お得(?!意)|半額|特価|値引"),
        ("free", r"無料|タダ|(?:を|で)プレゼント|プレゼント(?:します|いたします|中)|かかりません"),
        ("scarcity", r"在庫限り|残りわずか|残り僅か|本日限り|売り切れ|数量限定|期間限定|お早め"),
        ("price", r"[$€£¥￥](?:\s?\d+(?:[.,]\d+)*)?|\d\s?円|[一二三四五六七八九十百千万]+円"),
    ),
}
# A claim the brief names in a negated clause is forbidden, not made: "no discount", "avoid
# any sale talk", "we will not be offering a discount"; 割引なし, 送料無料とは書かないこと.
_NEGATED = {"en": re.compile(r"\b(?:no|not|without|never|don't|do not|avoid|skip|nor|"
                             r"exclude|neither|refrain|won't|isn't|aren't)\b[^.;!?]*$"),
            "ja": re.compile(r"^[^。；]*?(?:なし|無し|ない|ません|禁止|不可|控え)")}

_SPACED = re.compile(r"[\w'’-]+")
_SENTENCE = re.compile(r"[^.!?。！？\n]+")


def fold(text: str) -> str:
    """NFKC, case-folded, curly apostrophes straight, invisible characters (zero-width spaces,
    soft hyphens) dropped, runs of white space as one space."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


def _cjk(text: str) -> bool:
    return any(unicodedata.category(ch) == "Lo" for ch in text)


# Words whose singular means something else ("a short note", "pant").
_ALWAYS_PLURAL = frozenset({"shorts", "pants", "jeans", "leggings", "sunglasses", "binoculars",
                            "trousers", "glasses", "tights", "goods", "news"})


@lru_cache(maxsize=4096)
def _pattern(term: str) -> re.Pattern[str]:
    """A folded term as a pattern: whole words (singular or plural, hyphenated or not) unless
    the term is written in a script without spaces; a katakana term not inside a longer
    katakana word (ベスト is not ベストシーズン)."""
    t = re.escape(fold(term))
    if _cjk(term):
        if re.fullmatch(r"[ァ-ヺー・]+", term):
            return re.compile(rf"(?<![ァ-ヺー]){t}(?![ァ-ヺー])")
        return re.compile(t)
    if t.endswith("s") and len(t) > 3 and term not in _ALWAYS_PLURAL:
        t = t[:-1] + "s?"  # boots, boot
    return re.compile(rf"(?<!\w){t}(?:e?s)?(?!\w)")


def spans(text: str, term: str) -> list[tuple[int, int]]:
    """Where ``term`` occurs in the folded ``text``."""
    return [m.span() for m in _pattern(term).finditer(text)]


def mentions(text: str, term: str) -> bool:
    return bool(term.strip()) and bool(_pattern(term).search(fold(text)))


def _strings(output: Mapping[str, Any]) -> str:
    out: list[str] = []
    stack: list[Any] = [output]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return "\n".join(reversed(out))


def context_products(context: Mapping[str, Any] | None) -> list[str]:
    """The product names a contact's context holds: purchases, last purchase, line items,
    catalog entries."""
    out: list[str] = []
    for key in ("purchases", "last_purchase", "products", "line_items", "catalog"):
        value = (context or {}).get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, Mapping):
                item = item.get("name") or item.get("product") or item.get("sku")
            if isinstance(item, str):
                out += [p.strip() for p in re.split(r"[;\n|]", item) if p.strip()]
    return out


def brief_topics(brief: str, language: str, catalog: Iterable[str],
                 terms: Iterable[str]) -> list[str]:
    """What a brief is about, as words the copy should repeat: the catalog products it names,
    else the kinds of product it names, else its proper names (``Trail Day``) or, in Japanese,
    its katakana words. Empty when none can be told (then coverage is not checked). A kind of
    product named with a proper name ("the Granite boot fitting day") is about the name: "boots"
    alone does not cover it."""
    named = [n for n in catalog if mentions(brief, n)]
    if named:
        # a product may be named by its distinctive word alone ("the Kumo")
        return named + [w for n in named for w in _distinctive(n, terms)]
    kinds = [t for t in terms if mentions(brief, t)]
    if kinds and not (language == "ja" or _cjk(brief)):
        return _named_kinds(brief, kinds)
    if kinds:
        return kinds
    if language == "ja" or _cjk(brief):
        # katakana words (and their parts: ロイヤルティクラブ, クラブ) and kanji compounds
        kana = [k for run in re.findall(r"[ァ-ヺー・]{3,}", brief)
                for k in (run, *run.split("・")) if len(k) >= 2]
        kanji = [k for k in re.findall(r"[0-9０-９]*[一-龯々]+", brief)
                 if len(k) >= 2 and k not in _JA_GENERIC]
        return list(dict.fromkeys(kana + kanji))
    return _english_topics(brief)


def _named_kinds(brief: str, kinds: list[str]) -> list[str]:
    """The kinds of product a brief names, where one carries a proper name right before it
    ("the Granite boot", "the new Down vest") replaced by that name and the phrase: the copy must
    name the product, not any boot. Other capitalized words (Black Friday, Colorado) do not
    replace a kind."""
    words = re.findall(r"[\w'-]+|[.!?:;\n]", brief)
    out: list[str] = []
    for kind in kinds:
        first = kind.split()[0].lower()
        named = ""
        for i, w in enumerate(words):
            if w.lower().rstrip("s") != first.rstrip("s") or i == 0:
                continue
            before = words[i - 1]
            starts = i == 1 or words[i - 2] in ".!?:;\n"
            if before[:1].isupper() and not starts and before.lower() not in _CAPITAL_STOP:
                named = before
                break
        out += [f"{named} {kind}", named] if named else [kind]
    return list(dict.fromkeys(out))


def _english_topics(brief: str) -> list[str]:
    """A brief's proper names (``Trail Day``, ``Portland``) and content words (``workshop``)."""
    words = brief.split()
    topics: list[str] = []
    joined = False  # the previous word was part of a proper name
    for i, w in enumerate(words):
        core = w.strip(".,;:!?\"'()")
        starts = i == 0 or words[i - 1].endswith((".", "!", "?", ":"))  # a sentence's first word
        if not starts and core[:1].isupper() and len(core) > 1 and core.lower() not in _CAPITAL_STOP:
            if joined and not words[i - 1].endswith((",", ";")):
                topics[-1] = f"{topics[-1]} {core}"  # one name: Trail Day
            else:
                topics.append(core)  # a proper name: Portland
            joined = True
            continue
        joined = False
        if len(core) >= 4 and core.isalpha() and core.lower() not in _BRIEF_WORDS \
                and core.lower() not in _CAPITAL_STOP and core.lower() not in _WHEN:
            topics.append(core.lower())  # a content word: workshop, review, hike
    return topics


_INSTRUCTIONS = {"suggest", "invite", "thank", "remind", "tell", "introduce", "announce",
                 "offer", "present", "ask", "them", "their", "they"}

# When something happens is not what it is about ("the autumn group hike": the hike).
_WHEN = {"spring", "summer", "autumn", "fall", "winter", "today", "tomorrow", "tonight", "week",
         "weekend", "month", "morning", "evening", "season", "holiday", "holidays"}


# The words of an instruction rather than of its subject.
_BRIEF_WORDS = {"invite", "thank", "thanks", "remind", "offer", "introduce", "announce",
                "present", "suggest", "welcome", "their", "there", "about", "while", "would",
                "could", "should", "which", "these", "those", "other", "every", "customer",
                "customers", "order", "orders", "recent", "short", "friendly", "email", "message",
                "write", "based", "purchase", "purchases", "something", "within", "after",
                "before", "tell", "whether", "still", "since", "again", "always", "never",
                "suggests", "suggesting", "invites", "inviting", "thanking", "introducing",
                "announcing", "reminding", "offering", "mentions", "mentioning", "presenting",
                "joining", "joined", "welcoming",
                "customer's", "them", "they", "things", "latest", "with", "from", "this",
                "that", "what", "when", "have", "will", "your", "ours", "been", "into", "some",
                "more", "most", "very", "just", "like", "make", "also", "only", "over", "back",
                "here", "know", "want", "need", "each", "than", "then", "well", "good", "note",
                "step", "send", "join", "keep", "help", "give", "take", "come", "look", "show",
                "done", "long", "soon", "once", "both", "much", "many", "such", "same",
                "please", "include", "mention", "explain", "really", "great", "first", "next",
                "someone", "anything", "nothing", "ask", "asking", "share", "sharing",
                "matching", "accessory", "accessories", "product", "products", "item", "items",
                "gear", "offers", "update", "news", "information"}
_JA_GENERIC = {"お礼", "案内", "紹介", "提案", "最近", "注文", "顧客", "今週", "来週", "今月",
               "本日", "以上", "伝", "知"}


_CAPITAL_STOP = {"i", "we", "our", "you", "tone", "monday", "tuesday", "wednesday", "thursday", "friday",
                 "saturday", "sunday", "january", "february", "march", "april", "may", "june",
                 "july", "august", "september", "october", "november", "december"}


def _distinctive(name: str, terms: Iterable[str]) -> list[str]:
    return list(_distinctive_cached(name, tuple(terms)))


@lru_cache(maxsize=8192)
def _distinctive_cached(name: str, terms: tuple[str, ...]) -> tuple[str, ...]:
    common = {fold(t) for t in terms}
    # a word that names this product rather than describes it: capitalized ("Ridge trekking
    # poles": Ridge, not trekking) or in a script without case; in a name written all in lower
    # case ("kumo rain jacket"), any word that is not a kind of product
    words = [w for w in _SPACED.findall(name)
             if len(w) >= 4 and fold(w) not in common and not w.isdigit()]
    named = [w for w in words if not (w.isascii() and w.islower())]
    return tuple(named if named or name != name.lower() else words)


@dataclass(frozen=True)
class BriefGuard:
    """The copy names what the brief is about (one of its topics), and does not repeat the
    brief's instruction as copy ("suggest the Rain Cover for their")."""

    topics: tuple[str, ...]
    brief: str = ""
    name: str = "brief"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        text = _strings(output)
        echo = self._echo(text)
        if echo:
            return [f"brief: repeats the brief's instruction ('{echo}')"]
        if not self.topics:
            return []
        if any(mentions(text, t) for t in self.topics):
            return []
        # a content word in another form: hike, hiking; review, reviewed
        words = set(_SPACED.findall(fold(text)))
        for t in self.topics:
            if not _cjk(t) and " " not in t and len(t) >= 4 and t.islower():
                stem = t[:max(3, len(t) - 2)]
                if any(w.startswith(stem) for w in words):
                    return []
        # a Japanese compound is also named by its parts (ロイヤルティクラブ: クラブ; 5年間: 5年)
        folded = fold(text)
        for t in (fold(t) for t in self.topics if _cjk(t)):
            size = 3 if re.fullmatch(r"[ァ-ヺー・]+", t) else 2
            if any(t[i:i + size] in folded for i in range(len(t) - size + 1)):
                return []
        return [f"brief: the copy does not mention what the brief is about "
                f"({', '.join(self.topics[:3])})"]

    def _echo(self, text: str) -> str | None:
        """Five words of the brief, one of them an instruction word, found in the copy."""
        brief = _SPACED.findall(fold(self.brief))
        copy = " " + " ".join(_SPACED.findall(fold(text))) + " "
        for i in range(len(brief) - 4):
            run = brief[i:i + 5]
            if any(w in _INSTRUCTIONS for w in run) and f" {' '.join(run)} " in copy:
                return " ".join(run)
        return None


@dataclass(frozen=True)
class ProductGuard:
    """Every product the copy names is the brand's (its catalog), in the brief, or one the
    contact bought: a kind-of-product word (``boots``) counts only inside such a name, or when
    the brief or a purchase uses it too ("your shoes" after "Trail Runner 2 shoes")."""

    catalog: tuple[str, ...]
    bought: tuple[str, ...]
    terms: tuple[str, ...]  # kind-of-product words of the language
    brief: str
    name: str = "products"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        text = fold(_strings(output))
        covered = [s for n in (*self.catalog, *self.bought) for s in spans(text, n)]
        licensed = fold("\n".join((self.brief, *self.bought)))
        named = set()
        for term in self.terms:
            if spans(licensed, term):
                continue
            for start, end in spans(text, term):
                if not any(a <= start and end <= b for a, b in covered) \
                        and not self._short_name(text[:start], term):
                    named.add(text[start:end])
        return [f"products: names {t!r}, which is not in the catalog, the brief or the "
                f"contact's purchases" for t in sorted(named)]

    def _short_name(self, before: str, term: str) -> bool:
        """A known product by a short name: one of its distinctive words, then up to two more
        words, then a word its name contains ("your Summit pack" for "Summit 40L backpack";
        not "Kumo trail running shoes" for "Kumo Rain Jacket")."""
        near = {fold(w) for w in _SPACED.findall(before)[-3:]}
        fits = clashes = False
        for known in (*self.catalog, *self.bought):
            if any(fold(w) in near for w in _distinctive(known, self.terms)):
                if fold(term) in fold(known):
                    fits = True
                else:  # "Kumo ... shoes": a word of the jacket's name on another product
                    clashes = True
        return fits and not clashes


@dataclass(frozen=True)
class ClaimGuard:
    """No shipping, discount, free-of-charge or scarcity claim unless the brief makes it."""

    language: str
    brief: str
    known: str = ""  # the contact's values and product names: their numbers may be repeated
    name: str = "claims"

    def allowed(self) -> set[str]:
        brief = fold(self.brief)
        negated = _NEGATED.get(self.language)
        out = set()
        for claim, pattern in CLAIMS.get(self.language, ()):
            for m in re.finditer(pattern, brief):
                # English negates before the word ("no discount"), Japanese after (割引なし)
                near = brief[m.end():] if self.language == "ja" else \
                    re.split(r"[.;!?]", brief[:m.start()])[-1]
                if negated is None or not negated.search(near):
                    out.add(claim)
        return out

    def check(self, output: Mapping[str, Any]) -> list[str]:
        text = fold(_strings(output))
        allowed = self.allowed()
        out = []
        for claim, pattern in CLAIMS.get(self.language, ()):
            m = re.search(pattern, text)
            if m and claim not in allowed:
                out.append(f"claims: says {m.group(0)!r} ({claim}), which the brief does not")
        source = _digits(fold(self.brief + " " + self.known))
        briefed = set(_PERCENT.findall(source))
        for number in sorted(set(_PERCENT.findall(text)) - briefed):
            out.append(f"claims: says {number}%, which the brief does not")
        known = set(_NUMBER.findall(source)) | _spelled(source)
        said = set(_NUMBER.findall(text)) - set(_PERCENT.findall(text))
        invented = sorted((said | _spelled(text)) - known)
        if invented:  # a price, a date, a quantity: facts only the brief can give
            out.append(f"claims: gives the number {invented[0]}, which the brief does not")
        codes = sorted(set(_CODE.findall(text)) - set(_CODE.findall(source)))
        if codes:  # letters and digits run together ("a8b471", "2x"): a code or a made-up claim
            out.append(f"claims: gives the code {codes[0]!r}, which the brief does not")
        return out


_WORDS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
          "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
          "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100"}


def _digits(text: str) -> str:
    """``text`` with English number words also written in digits ("five years" -> 5)."""
    extra = [_WORDS[w] for w in re.findall(r"[a-z]+", text) if w in _WORDS]
    return text + " " + " ".join(extra)


_UNITS = ("percent|per cent|%|dollars?|euros?|pounds?|bucks|yen|days?|hours?|weeks?|months?|"
          "years?|minutes?|off|times")
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_SPELLED_EN = re.compile(rf"\b((?:{'|'.join(_TENS)})(?:-(?:one|two|three|four|five|six|seven|"
                         rf"eight|nine))?|one|two|three|four|five|six|seven|eight|nine|ten|"
                         rf"eleven|twelve|a hundred|hundred)\s+(?:{_UNITS})\b")
_SPELLED_JA = re.compile(r"([一二三四五六七八九十百千万]+)"
                         r"(?:割|%|％|円|ドル|日|年|時間|か月|ヶ月|カ月|週間|倍)")
_KANJI = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}


def _spelled(text: str) -> set[str]:
    """Numbers written in words before a unit ("forty-nine dollars", "三割", "五年"), as digits:
    copy generated without digits may still invent a price or a deadline in words."""
    out = set()
    for m in _SPELLED_EN.finditer(text):
        word = m.group(1).replace("a hundred", "hundred")
        tens, _, unit = word.partition("-")
        value = _TENS.get(tens) or int(_WORDS.get(tens, "0"))
        out.add(str(value + (int(_WORDS[unit]) if unit else 0)))
    for m in _SPELLED_JA.finditer(text):
        total = part = 0
        for ch in m.group(1):
            if ch in _KANJI:
                part = _KANJI[ch]
            elif ch in "十百千":
                total += (part or 1) * {"十": 10, "百": 100, "千": 1000}[ch]
                part = 0
            else:  # 万
                total = (total + part) * 10000
                part = 0
        out.add(str(total + part))
    return out


_NUMBER = re.compile(r"(?<![A-Za-z0-9_.,])(\d+(?:[.,]\d+)*)")
_CODE = re.compile(r"(?<![\w])(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*"
                   r"(?![\w])")
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?) ?(?:%|percent|パーセント)")


@dataclass(frozen=True)
class MarkupGuard:
    """Plain-text copy holds no HTML tags (``<strong>``): a CRM shows them as they are."""

    name: str = "markup"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        m = _TAG.search(_strings(output))
        return [f"markup: an HTML tag in plain-text copy ({m.group(0)[:40]!r})"] if m else []


_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:[\s/][^<>]*)?>|<!--")


@dataclass(frozen=True)
class IdentifierGuard:
    """The contact's email address and phone numbers never appear in the copy (a greeting
    uses the name; an identifier in a subject line is a leak and a tell of a broken merge)."""

    emails: tuple[str, ...]
    phones: tuple[str, ...]  # digits only
    name: str = "identifiers"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        text = fold(_strings(output))
        digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", text))
        out = []
        if any(e and fold(e) in text for e in self.emails):
            out.append("identifiers: the copy shows the contact's email address")
        if any(len(p) >= 6 and p[-7:] in digits for p in self.phones):
            out.append("identifiers: the copy shows the contact's phone number")
        return out


def identifiers(context: Mapping[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The contact's email addresses and phone numbers (digits) in a canonical context."""
    emails, phones = [], []
    for key, value in (context or {}).items():
        if not isinstance(value, str | int):
            continue
        text = str(value)
        if "@" in text and re.fullmatch(r"\S+@\S+", text.strip()):
            emails.append(text.strip())
        elif _PHONE_KEY.search(fold(str(key))):  # phone, Work Phone, Mobile, 携帯電話 ...
            d = re.sub(r"\D", "", unicodedata.normalize("NFKC", text))
            if len(d) >= 6:
                phones.append(d)
    return tuple(emails), tuple(phones)


_PHONE_KEY = re.compile(r"phone|mobile|cell|fax|tel\b|telefon|téléphone|電話|携帯")


@dataclass(frozen=True)
class ExampleGuard:
    """The copy repeats no run of a few-shot example's words (six words with a long one among
    them; eighteen characters in Japanese, longer than a stock thank-you) that the brief and the
    contact's data do not also contain."""

    example_text: tuple[str, ...]
    allowed_text: str  # the brief and the contact's values
    name: str = "examples"

    def check(self, output: Mapping[str, Any]) -> list[str]:
        text = _strings(output)
        mine = _shingles(text)
        allowed = _shingles(self.allowed_text)
        for example in self.example_text:
            shared = (_shingles(example) & mine) - allowed
            if shared:
                return [f"examples: copies a few-shot example ('{sorted(shared)[0]}')"]
        return []


def _shingles(text: str) -> set[str]:
    text = PLACEHOLDER_RE.sub(" ", text)
    out: set[str] = set()
    for sentence in _SENTENCE.findall(fold(text)):
        if _cjk(sentence):
            s = re.sub(r"[\s、,]", "", sentence)
            out.update(s[i:i + 18] for i in range(len(s) - 17))
        else:
            words = _SPACED.findall(sentence)
            # six words, one of them long enough to be the example's own ("midlayer",
            # "comfortable"), so a stock "thank you for your first order" is not a copy
            out.update(" ".join(words[i:i + 6]) for i in range(len(words) - 5)
                       if any(len(w) >= 6 for w in words[i:i + 6]))
    return out
