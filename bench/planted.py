"""The committed set of planted bad outputs that ``bench.quality`` tries the guards on.

Each is a good email for a real case of the evaluation set, with one defect of the kinds a small
model was seen to make: the brief's product missing, a product nobody sells, a few-shot example
copied, the contact's email or phone in the copy, a claim the brief did not make (shipped,
discounted, free), the wrong person greeted, the English sign-off under a Japanese email, a
banned word, an overlong subject. The good email itself is part of the set's proof: the
independent checks must pass it (``tests/bench/test_quality.py``).
"""

from __future__ import annotations

from typing import Any

from bench.evalset import Case, EvalSet

EN_SIGN_OFF = "— The Baton Demo Outfitters team"
JA_SIGN_OFF = "Baton Demo Outfitters スタッフ一同"


def good(case: Case) -> dict[str, str]:
    """A plain, sendable email for ``case``: greets, names the brief's subject, claims only
    what the brief claims."""
    topic = case.brief.products[0] if case.brief.products else case.brief.about[0]
    if case.language == "ja":
        return {"subject": f"{case.last_name}様、{topic}のご案内",
                "preheader": f"{topic}について",
                "body": f"{case.last_name}様\n\nいつもありがとうございます。{topic}について、"
                        f"ぜひご覧いただきたくご案内いたします。\n\n{JA_SIGN_OFF}"}
    return {"subject": f"{case.first_name}, about the {topic}",
            "preheader": f"A note about the {topic}",
            "body": f"Hi {case.first_name},\n\nWe thought you would like to hear about the "
                    f"{topic}. Reply to this email if you have any questions.\n\n{EN_SIGN_OFF}"}


def _body(out: dict[str, str], extra: str, ja: bool) -> dict[str, str]:
    sign = JA_SIGN_OFF if ja else EN_SIGN_OFF
    body = out["body"].replace(f"\n\n{sign}", f" {extra}\n\n{sign}")
    return {**out, "body": body}


def defects(case: Case) -> list[tuple[str, dict[str, str]]]:
    ja = case.language == "ja"
    g = good(case)
    topic = case.brief.products[0] if case.brief.products else case.brief.about[0]
    out: list[tuple[str, dict[str, str]]] = []
    vague = ({**g, "subject": f"{case.last_name}様へのお知らせ", "preheader": "新着情報",
              "body": g["body"].replace(f"{topic}について、", "新しい商品を")} if ja else
             {**g, "subject": f"{case.first_name}, something new", "preheader": "Take a look",
              "body": g["body"].replace(f"about the {topic}", "about what is new")})
    if not any(a in vague["body"] + vague["subject"] for a in case.brief.about):
        out.append(("brief missing", vague))
    out.append(("invented product", _body(g, "ぴったりのサンダルもご用意しました。" if ja else
                                          "We've got the perfect pair of hiking sandals too.", ja)))
    out.append(("example copied", _body(
        g, "新しいフリースはお持ちのレインシェルの下にぴったり重ねられ、寒い朝も快適です。" if ja else
        "The new Fleece Midlayer fits right under the Rain Shell you picked last spring, so "
        "cold mornings stay comfortable.", ja)))
    out.append(("email in copy", {**g, "subject": f"{case.email}: {g['subject']}"}))
    out.append(("phone in copy", _body(g, f"お電話({case.phone})でも承ります。" if ja else
                                       f"We can also call you at {case.phone}.", ja)))
    if "shipping" not in case.brief.claims:
        out.append(("shipped claim", _body(g, "ご注文の商品は本日発送しました。" if ja else
                                           "Your order has shipped today.", ja)))
    if "discount" not in case.brief.claims:
        out.append(("discount claim", _body(g, "今なら20%オフです。" if ja else
                                            "Enjoy 20% off this week.", ja)))
    if "free" not in case.brief.claims:
        out.append(("free claim", _body(g, "送料は無料です。" if ja else
                                        "And delivery is free of charge.", ja)))
    wrong = "田中" if case.last_name != "田中" else "鈴木"
    out.append(("wrong person", {**g, "body": g["body"].replace(
        f"{case.last_name}様", f"{wrong}様", 1) if ja else g["body"].replace(
        f"Hi {case.first_name},", "Hi Alex,", 1)}))
    if ja:
        out.append(("english sign-off in japanese", {**g, "body": g["body"].replace(
            JA_SIGN_OFF, EN_SIGN_OFF)}))
    else:
        out.append(("banned word", _body(g, "It will elevate every hike.", ja)))
    out.append(("subject too long", {**g, "subject": g["subject"] + " " + "x" * 120}))
    return out


def planted(data: EvalSet, per_language: int = 12) -> list[tuple[Any, dict[str, str], str]]:
    """(task, bad output, defect) for the first ``per_language`` cases of each language."""
    from core.tasks.kinds import Task

    out = []
    for lang in ("en", "ja"):
        for case in [c for c in data.cases if c.language == lang][:per_language]:
            task = Task(kind="email", context=case.contact, brief=case.brief.text, tenant="eval",
                        language=lang, tier="routine")
            out += [(task, bad, defect) for defect, bad in defects(case)]
    return out
