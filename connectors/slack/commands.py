"""``/baton <subcommand> ...``: what a slash command's text asks for.

Parsed in the request (cheap, no I/O) so that a mistake is answered at once with the usage, and
only a command that can run becomes a job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from connectors.slack.messages import say, slack_text

SUBCOMMANDS = ("email", "recommend", "reply", "roi", "help")
MONTH = re.compile(r"^(20\d\d)-(0[1-9]|1[0-2])$")
MAX_TEXT = 3000  # what Slack lets a user type after a slash command is about 4,000 characters


@dataclass(frozen=True)
class Command:
    sub: str  # email, recommend, reply, roi, help
    target: str = ""  # the contact (email, recommend), the month (roi)
    text: str = ""  # the brief (email) or the question (reply)


class Usage(Exception):
    """The text asks for nothing Baton can do: the message to show, with the usage."""


def parse(text: str, command: str = "/baton") -> Command:
    words = text.strip().split(None, 1)
    if not words or words[0].lower() in ("help", "?", "-h", "--help"):
        return Command("help")
    sub, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
    if sub not in SUBCOMMANDS:
        raise Usage(say("en", "unknown", sub=sub[:40]) + "\n" + say("en", "usage", cmd=command))
    if len(rest) > MAX_TEXT:
        rest = rest[:MAX_TEXT]
    if sub in ("email", "recommend"):
        target, _, brief = rest.partition(" ")
        target = _unlink(target)
        if not target:
            raise Usage(say("en", "missing_contact", cmd=command, sub=sub) + "\n"
                        + say("en", "usage", cmd=command))
        return Command(sub, target, slack_text(brief).strip())
    if sub == "reply":
        if not rest:
            raise Usage(say("en", "missing_question", cmd=command) + "\n"
                        + say("en", "usage", cmd=command))
        return Command(sub, "", slack_text(rest))
    if sub == "roi":
        if rest and not MONTH.match(rest):
            raise Usage(say("en", "bad_month", cmd=command))
        return Command(sub, rest)
    return Command("help")


def _unlink(target: str) -> str:
    """Slack turns a typed email address into ``<mailto:ann@example.com|ann@example.com>``
    (when the command escapes its text): the address itself."""
    target = target.strip()
    if target.startswith("<") and target.endswith(">"):
        inner = target[1:-1]
        inner = inner.split("|", 1)[1] if "|" in inner else inner
        target = inner.removeprefix("mailto:")
    return target.strip()
