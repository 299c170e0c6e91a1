"""Copy quality, measured independently of what it measures.

Every contact of the evaluation set (``bench/evalset.py``: 240 contacts in HubSpot, Salesforce
and spreadsheet field styles, English and Japanese, 34 briefs) gets an email from the engine on
the embedded default policy and model; every output is then scored by this file's own checks,
which import nothing from Baton's guards:

- generated: an output came back (a refusal, an error or a held output is not useful);
- greets the right person: English opens with the first name, Japanese with the family name
  and 様;
- about the brief: names one of the words that show the brief's subject;
- no product outside the brief, the contact's purchases and the catalog (catalog names plus a
  per-language list of product words: a product word must sit inside such a name, or the brief
  or a purchase must use it);
- no contact identifier (the contact's email address or phone number, any email address);
- no sentence of a few-shot example;
- no claim the brief did not make (shipped, discount, free, scarcity);
- lengths, banned words, the sign-off of the email's language (and no other language's).

Then the guards are tried on a committed set of planted bad outputs (``bench/planted.py``): each
is a good email for a real case with one defect. Last line::

    useful=<share of contacts with a sendable output> written_bad=<share of the outputs Baton's
    guards passed that these checks fail> guard_recall=<share of planted bad outputs the guards
    reject>

``python -m bench.quality`` (all 240; ``--n 40`` for fewer; ``--show 5`` prints failures).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.evalset import Case, EvalSet, make

# The claims a reader would hold the brand to, per language.
CLAIM_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"shipping": ("shipped", "ships today", "on its way to you", "on their way to you",
                        "dispatched", "has been delivered", "tracking number",
                        "heading your way", "arrives tomorrow", "out for delivery"),
           "discount": ("% off", "percent off", "discount", "on sale", "coupon", "promo code",
                        "half price", "half off", "save up to", "bargain", "price drop",
                        "prices drop"),
           "free": ("for free", "free shipping", "free gift", "free of charge", "free delivery",
                    "complimentary", "at no cost", "no charge"),
           "scarcity": ("last chance", "limited stock", "selling out", "while supplies last",
                        "hurry", "left in stock", "limited time"),
           "price": ("$", "€", "£", " usd", " dollars")},
    "ja": {"shipping": ("発送", "出荷", "お届けしました"),
           "discount": ("%オフ", "％オフ", "割引", "セール中", "クーポン", "半額", "特価"),
           "free": ("無料", "をプレゼント", "かかりません"),
           "scarcity": ("在庫限り", "残りわずか", "残り僅か", "本日限り", "数量限定", "期間限定"),
           "price": ("円", "¥", "￥")},
}


NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "twenty": 20}


def norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().replace("’", "'").split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'-]+", norm(text))


def _has_word(text: str, word: str) -> bool:
    """Whether ``word`` (a phrase; an English plural allowed) is in ``text``."""
    t, w = norm(text), norm(word)
    if not w.isascii():
        return w in t
    return re.search(rf"(?<![a-z0-9-]){re.escape(w)}(?:s|es)?(?![a-z0-9-])", t) is not None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"[.!?。！？\n]+", norm(text)) if len(s.strip()) >= 12]


@dataclass(frozen=True)
class Rules:
    """What the checks hold copy to, read from the policy and the evaluation set."""

    catalog: dict[str, list[str]]
    product_words: dict[str, list[str]]
    example_sentences: dict[str, list[str]]  # per language
    banned: list[str]
    sign_offs: dict[str, str]
    max_subject: int
    max_preheader: int
    max_body: int


def check(case: Case, output: Mapping[str, Any] | None, rules: Rules) -> list[str]:
    """What is wrong with ``output`` as an email to ``case``'s contact (empty: sendable)."""
    if not output:
        return ["generated: no output"]
    subject, pre, body = (str(output.get(k, "")) for k in ("subject", "preheader", "body"))
    everything = "\n".join((subject, pre, body))
    lang = case.language
    out = []
    first_line = body.strip().split("\n", 1)[0]
    if lang == "ja":
        if f"{case.last_name}様" not in first_line:
            out.append(f"greeting: the first line does not greet {case.last_name}様")
    elif not re.search(rf"\b{re.escape(case.first_name)}\b", first_line):
        out.append(f"greeting: the first line does not greet {case.first_name}")
    if not any(_has_word(everything, a) for a in case.brief.about):
        out.append(f"about: names none of {case.brief.about}")
    out += _unknown_products(case, everything, rules)
    if case.email.lower() in everything.lower() or re.search(r"[\w.+-]+@[\w-]+\.\w", everything):
        out.append("identifier: an email address in the copy")
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", everything))
    if re.sub(r"\D", "", case.phone)[-7:] in digits:
        out.append("identifier: the contact's phone number in the copy")
    if re.search(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>", everything, re.I):
        out.append("markup: an HTML tag in plain-text copy")
    mine = set(_sentences(everything))
    for sentence in rules.example_sentences.get(lang, []):
        if sentence in mine or (len(sentence) > 30 and sentence in norm(everything)):
            out.append(f"example: copies the example sentence {sentence!r}")
            break
    for claim, words in CLAIM_WORDS[lang].items():
        said = [w for w in words if w in norm(everything)]
        if said and claim not in case.brief.claims:
            out.append(f"claim: says {said[0]!r} ({claim}), which the brief does not")
    percents = set(re.findall(r"(\d+) ?[%％]", unicodedata.normalize("NFKC", everything)))
    if percents - set(re.findall(r"(\d+) ?[%％]", case.brief.text)):
        out.append(f"claim: a percentage the brief does not give ({sorted(percents)})")
    sources = " ".join((case.brief.text, json.dumps(case.contact, ensure_ascii=False),
                        *rules.catalog[lang]))
    for word, digit in NUMBER_WORDS.items():  # "five years" licenses "5 years"
        if re.search(rf"\b{word}\b", sources.lower()):
            sources += f" {digit}"
    numbers = set(re.findall(r"\d+", unicodedata.normalize("NFKC", everything)))
    if numbers - set(re.findall(r"\d+", unicodedata.normalize("NFKC", sources))):
        out.append(f"claim: a number the brief does not give "
                   f"({sorted(numbers - set(re.findall(r'[0-9]+', sources)))})")
    if not subject.strip() or len(subject) > rules.max_subject:
        out.append(f"length: subject of {len(subject)} characters")
    if len(pre) > rules.max_preheader:
        out.append(f"length: preheader of {len(pre)} characters")
    greeting = f"{case.last_name}様" if lang == "ja" else f"Hi {case.first_name},"
    content = body.replace(greeting, "", 1)
    for text in rules.sign_offs.values():
        content = content.replace(text, "") if text else content
    if len(content.strip()) < (30 if lang == "ja" else 60) or len(body) > rules.max_body:
        out.append(f"length: the body says {len(content.strip())} characters besides greeting "
                   f"and sign-off")
    for word in rules.banned:
        if _has_word(everything, word):
            out.append(f"banned: uses {word!r}")
    sign_off = rules.sign_offs.get(lang, "")
    if sign_off and not body.rstrip().endswith(sign_off):
        out.append("sign-off: the body does not end with the sign-off of its language")
    for other, text in rules.sign_offs.items():
        if other != lang and text and text != sign_off and text in body:
            out.append(f"sign-off: ends with the {other} sign-off")
    return out


def _unknown_products(case: Case, text: str, rules: Rules) -> list[str]:
    """Product words outside every allowed product name, not used by the brief or purchases."""
    lang = case.language
    allowed_names = [*rules.catalog[lang], *case.purchases, *case.brief.products]
    said = norm(text)
    inside: list[tuple[int, int]] = []
    for name in allowed_names:
        n = norm(name)
        start = said.find(n)
        while start >= 0:
            end = start + len(n)
            end += 2 if said[end:end + 2] == "es" else 1 if said[end:end + 1] == "s" else 0
            inside.append((start, end))  # its plural too: the Basecamp tents
            start = said.find(n, start + 1)
    licence = norm(" ".join((case.brief.text, *case.purchases)))
    out = []
    for word in rules.product_words[lang]:
        if any(_has_word(licence, w) for w in (word, re.sub(r"(?:es|s)$", "", word))):
            continue  # the brief's "tent" licenses "tents"
        pattern = re.escape(norm(word)) if not word.isascii() else \
            rf"(?<![a-z0-9-]){re.escape(norm(word))}(?:s|es)?(?![a-z0-9-])"
        for m in re.finditer(pattern, said):
            if any(a <= m.start() and m.end() <= b for a, b in inside):
                continue
            if _names_a_product_shortly(said[:m.start()], word, allowed_names):
                continue
            out.append(f"product: names {m.group(0)!r}, outside the brief, purchases and catalog")
            break
    return out


def _names_a_product_shortly(before: str, word: str, names: Sequence[str]) -> bool:
    """'your Summit pack' for 'Summit 40L backpack': a word of the name just before, and the
    product word part of that name."""
    last = _words(before)[-3:]
    right = wrong = False
    for name in names:
        own = [w for w in _words(name) if len(w) >= 4 and w != norm(word)]
        if any(w in last for w in own):
            if norm(word) in norm(name):
                right = True
            else:  # 'the Kumo trail running shoes': the jacket's name on shoes
                wrong = True
    return right and not wrong


# -- running ---------------------------------------------------------------------------------


def rules_for(policy: Any, data: EvalSet) -> Rules:
    from core.tasks.prompts import BUILTIN_EXAMPLES  # the examples the prompts show: data, not checks

    brand = policy.brand_for("eval") if hasattr(policy, "brand_for") else policy.brand
    sentences: dict[str, list[str]] = {}
    for lang in ("en", "ja"):
        examples = [e for e in brand.examples if e.kind == "email" and e.language == lang] or \
            BUILTIN_EXAMPLES.get(("email", lang), [])
        text = " ".join(json.dumps(e.output, ensure_ascii=False) for e in examples)
        text = re.sub(r"\{[a-z_]+\}", "", text).replace("\\n", "\n")
        sentences[lang] = [s for s in _sentences(text) if len(s) >= 20]
    # English is the brand's own sign-off; another language's is its override, if any (an
    # English sign-off under a Japanese email is a fault either way)
    overrides = getattr(brand, "languages", {})
    sign_offs = {"en": brand.sign_off,
                 "ja": overrides["ja"].sign_off or "" if "ja" in overrides else ""}
    return Rules(catalog=data.catalog, product_words=data.product_terms,
                 example_sentences=sentences, banned=list(brand.banned_words),
                 sign_offs=sign_offs, max_subject=brand.max_subject_chars,
                 max_preheader=brand.max_preheader_chars, max_body=brand.max_body_chars)


def eval_policy(data: EvalSet) -> Any:
    """The embedded default policy, its brand given the evaluation set's catalog (as a brand's
    ``baton.toml`` would), routed locally: the bundled model does the work."""
    from core.policy import load_policy

    policy = load_policy(None)
    brand = policy.brand
    fields = getattr(type(brand), "model_fields", {})
    if "catalog" in fields:
        brand = brand.model_copy(update={"catalog": data.catalog["en"] + data.catalog["ja"]})
    return policy.model_copy(update={"brands": {"eval": brand}})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=240, help="contacts (default: all 240)")
    parser.add_argument("--show", type=int, default=0, help="print this many failures")
    parser.add_argument("--best-of", type=int, default=None,
                        help="candidates per attempt (default: the policy's [local] best_of)")
    parser.add_argument("--best-of-retry", type=int, default=None,
                        help="candidates of a second attempt (default: the policy's)")
    args = parser.parse_args(argv)

    from baton.wiring import build_app
    from bench._common import bench_settings
    from core.errors import BatonError
    from core.tasks.kinds import Task

    data = make(args.n)
    policy = eval_policy(data)
    for name in ("best_of", "best_of_retry"):
        if getattr(args, name) is not None:
            policy = policy.model_copy(update={
                "local": policy.local.model_copy(update={name: getattr(args, name)})})
    app = build_app(bench_settings(), policy)
    rules = rules_for(policy, data)
    tasks = [Task(kind="email", context=c.contact, brief=c.brief.text, tenant="eval",
                  language=c.language, tier="routine", id=c.id)  # seeds follow the id: repeatable
             for c in data.cases]
    started = time.perf_counter()
    outcomes = app.engine.run_many(tasks)
    seconds = time.perf_counter() - started

    useful = 0
    passed = failed_passed = 0
    why: Counter[str] = Counter()
    attempts: Counter[int] = Counter()
    refused: Counter[str] = Counter()
    shown = 0
    for case, outcome in zip(data.cases, outcomes, strict=True):
        if isinstance(outcome, BatonError):
            refused[str(outcome).split(":")[0] if ":" in str(outcome) else type(outcome).__name__] += 1
            for v in getattr(outcome, "violations", []) or []:
                refused[v.split(":")[0]] += 1
            continue
        passed += 1
        attempts[outcome.receipt.attempt] += 1
        problems = check(case, outcome.output, rules)
        if problems:
            failed_passed += 1
            why.update(p.split(":")[0] for p in problems)
            if shown < args.show:
                shown += 1
                print(f"--- {case.id} ({case.language}, {case.brief.kind}): {problems}\n"
                      f"{json.dumps(outcome.output, ensure_ascii=False, indent=1)}")
        else:
            useful += 1
    n = len(data.cases)
    print(f"{n} contacts in {seconds:.0f} s: {passed} passed Baton's guards, {useful} sendable "
          f"(best_of={policy.local.best_of}, best_of_retry={policy.local.best_of_retry}; "
          f"passed on the first attempt: {attempts[1]}, on the "
          f"second: {attempts[2]})")
    print(f"checks failed by outputs Baton passed: {dict(why.most_common())}")
    print(f"guards' reasons for outputs Baton held back: {dict(refused.most_common(8))}")
    recall = guard_recall(app.engine, data)
    print(f"useful={useful / n:.3f} written_bad={failed_passed / max(passed, 1):.3f} "
          f"guard_recall={recall}")


def guard_recall(engine: Any, data: EvalSet) -> str:
    """Share of the planted bad outputs that the engine's guards reject ("n/a" when the engine
    cannot review a given output)."""
    from bench.planted import planted

    review = getattr(engine, "review", None)
    if review is None:
        return "n/a"
    items = planted(data)
    caught = sum(bool(review(task, output)) for task, output, _ in items)
    missed = Counter(defect for task, output, defect in items if not review(task, output))
    if missed:
        print(f"planted defects the guards missed: {dict(missed)}")
    return f"{caught / len(items):.3f}"


if __name__ == "__main__":
    main()
