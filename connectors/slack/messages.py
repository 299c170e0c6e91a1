"""What Baton says in Slack, in English and Japanese, and how long text fits Block Kit.

Generated copy is escaped before it is posted (``&``, ``<``, ``>``): text a model or a CRM field
wrote can never become a mention (``<!channel>``, ``<@U…>``) or a link in Slack's markup.
A section's text holds at most 3,000 characters and a message at most 50 blocks: longer output
is cut at line breaks into sections, and sections into several messages (the first in the
channel or thread, the rest in its thread).
"""

from __future__ import annotations

import re
from typing import Any

SECTION_CHARS = 3000
BLOCKS_PER_MESSAGE = 50

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "working": "Working on it: the {what} will appear in this channel.",
        "usage": "*Baton* drafts copy from your CRM here.\n"
                 "• `{cmd} email <contact email or CRM id> [brief]`: a personalized email\n"
                 "• `{cmd} recommend <contact email or CRM id>`: product recommendations\n"
                 "• `{cmd} reply <customer question>`: a support reply\n"
                 "• `{cmd} roi [month]`: what inference cost and saved this month (or `2026-11`)\n"
                 "• `{cmd} help`: this message\n"
                 "Mention @Baton in a thread to have it answer there.",
        "unknown": "I don't know `{sub}`.",
        "missing_contact": "`{cmd} {sub}` needs a contact: an email address or a CRM record id.",
        "missing_question": "`{cmd} reply` needs the customer's question.",
        "bad_month": "`{cmd} roi` takes a month such as `2026-11`, or nothing for this month.",
        "no_crm": "No CRM is mapped to this workspace, so I can't look contacts up. An admin "
                  "maps it in baton.toml: `[slack.workspaces.{team}] tenants = [\"hubspot:<portal>\"]`.",
        "not_enabled": "Baton is installed but not enabled for this workspace. An admin lists it "
                       "in baton.toml: `[slack.workspaces.{team}]` (with the CRM tenants it may see).",
        "not_installed": "Baton is not installed in this workspace. An admin installs it from "
                         "Baton's /slack/install page (or with `baton slack connect`).",
        "not_found": "No contact {key} in {tenants}.",
        "opted_out": "{who} opted out of marketing email: no draft.",
        "failed": "I couldn't write that: {reason}",
        "not_passed": "the draft did not pass Baton's checks (the reason is in its job)",
        "not_in_channel": "I can't post in this channel. Invite me with `/invite @Baton`, "
                          "then try again. Here is what I wrote:",
        "email_for": "*Email draft for {who}*",
        "recommend_for": "*Recommendations for {who}*",
        "reply": "*Reply draft*",
        "answer": "",
        "receipt": "{route} · {model} · {cost} · {ms} ms · receipt `{receipt}`",
        "roi_title": "*Inference ROI since {since}*",
        "roi_line": "{tenant}: {calls} calls, {local:.0%} local, spent ${cost:.4f}, "
                    "saved ${saved:.4f} against all-cloud, p95 {p95:.0f} ms",
        "roi_none": "No inference since {since} in {tenants}.",
        "email": "email draft", "recommend": "recommendations", "reply_what": "reply draft",
        "roi": "report",
    },
    "ja": {
        "working": "作成中です。{what}はこのチャンネルに投稿します。",
        "usage": "*Baton* は CRM のデータから文面を作成します。\n"
                 "• `{cmd} email <連絡先のメールアドレスまたは CRM ID> [指示]`: 個別メール\n"
                 "• `{cmd} recommend <連絡先>`: おすすめ商品\n"
                 "• `{cmd} reply <お客様の質問>`: サポート返信\n"
                 "• `{cmd} roi [月]`: 今月 (または `2026-11`) の推論コストと節約額\n"
                 "• `{cmd} help`: このメッセージ\n"
                 "スレッドで @Baton とメンションすると、そのスレッドで回答します。",
        "unknown": "`{sub}` は使えません。",
        "missing_contact": "`{cmd} {sub}` には連絡先 (メールアドレスまたは CRM ID) が必要です。",
        "missing_question": "`{cmd} reply` にはお客様の質問が必要です。",
        "bad_month": "`{cmd} roi` には `2026-11` のような月を指定してください。",
        "no_crm": "このワークスペースには CRM が割り当てられていません。管理者が baton.toml の "
                  "`[slack.workspaces.{team}]` で設定します。",
        "not_enabled": "Baton はこのワークスペースで有効になっていません。管理者が baton.toml の "
                       "`[slack.workspaces.{team}]` で設定します。",
        "not_installed": "このワークスペースには Baton がインストールされていません。",
        "not_found": "{tenants} に連絡先 {key} が見つかりません。",
        "opted_out": "{who} はマーケティングメールの配信を停止しています。下書きは作成しません。",
        "failed": "作成できませんでした: {reason}",
        "not_passed": "下書きが Baton のチェックを通りませんでした (理由はジョブに記録されています)",
        "not_in_channel": "このチャンネルには投稿できません。`/invite @Baton` で招待してから"
                          "もう一度お試しください。作成した内容:",
        "email_for": "*{who} 宛てのメール下書き*",
        "recommend_for": "*{who} へのおすすめ*",
        "reply": "*返信の下書き*",
        "answer": "",
        "receipt": "{route} · {model} · {cost} · {ms} ms · レシート `{receipt}`",
        "roi_title": "*{since} 以降の推論 ROI*",
        "roi_line": "{tenant}: {calls} 回、ローカル {local:.0%}、費用 ${cost:.4f}、"
                    "全クラウド比の節約 ${saved:.4f}、p95 {p95:.0f} ms",
        "roi_none": "{since} 以降、{tenants} での推論はありません。",
        "email": "メール下書き", "recommend": "おすすめ", "reply_what": "返信の下書き",
        "roi": "レポート",
    },
}


def say(language: str, name: str, /, **values: Any) -> str:
    """Baton's line ``name`` in ``language`` (English for any other), filled in."""
    texts = TEXTS.get(language, TEXTS["en"])
    return texts.get(name, TEXTS["en"][name]).format(**values)


def language_of(locale: str | None) -> str:
    """Baton's language for a Slack locale (``ja-JP`` -> ``ja``); English otherwise."""
    return "ja" if (locale or "").lower().startswith("ja") else "en"


def escape(text: str) -> str:
    """Text as Slack's markup shows it literally (no mentions, links or channel pings)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(text: str) -> str:
    """Text as a person typed it, from Slack's markup: ``<@U123>`` -> ``@U123``, ``<#C1|general>``
    -> ``#general``, ``<https://x|label>`` -> ``label (https://x)``, ``<mailto:a@b|a@b>`` ->
    ``a@b``, and ``&amp; &lt; &gt;`` unescaped (so a brief reads as it was written)."""
    def plain(m: re.Match[str]) -> str:
        inner, _, label = m.group(1).partition("|")
        if inner.startswith(("@", "!")):
            return "@" + (label or inner[1:])
        if inner.startswith("#"):
            return "#" + (label or inner[1:])
        if inner.startswith("mailto:"):
            return label or inner[7:]
        return f"{label} ({inner})" if label and label != inner else inner

    text = re.sub(r"<([^<>]+)>", plain, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def sections(text: str, limit: int = SECTION_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line breaks where possible,
    else at spaces, else anywhere."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest.strip() or not pieces:
        pieces.append(rest)
    return [p for p in pieces if p.strip()] or [""]


def messages(title: str, body: str, footer: str = "") -> list[list[dict[str, Any]]]:
    """Block Kit messages for a title (mrkdwn, Baton's own), a body (escaped here) and a
    context footer: as many messages of at most 50 blocks as the body needs."""
    blocks: list[dict[str, Any]] = []
    if title:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": title[:SECTION_CHARS]}})
    blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": piece}}
               for piece in sections(escape(body)) if piece]
    if footer:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                        "text": footer[:SECTION_CHARS]}]})
    return [blocks[i:i + BLOCKS_PER_MESSAGE] for i in range(0, len(blocks), BLOCKS_PER_MESSAGE)]


def plain(blocks: list[dict[str, Any]], limit: int = 3000) -> str:
    """A message's notification text (what Slack shows where blocks can't be)."""
    parts = [b["text"]["text"] for b in blocks if b.get("type") == "section"]
    return "\n".join(parts)[:limit] or " "
