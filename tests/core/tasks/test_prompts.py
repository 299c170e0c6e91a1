"""Which few-shot examples a prompt shows (core/tasks/prompts.py)."""

from core.policy import Example
from core.tasks.prompts import BUILTIN_EXAMPLES, EXAMPLES_SHOWN, example_pool, examples_for


def _briefs(examples: list[Example]) -> list[str]:
    return [e.brief for e in examples]


def test_each_brief_is_shown_the_examples_whose_briefs_resemble_it() -> None:
    invite = examples_for("email", "en", [], "Invite them to our Trail Day in Portland on Saturday.")
    assert len(invite) == EXAMPLES_SHOWN
    assert invite[0].brief.startswith("Invite them to the trail-running clinic")
    discount = examples_for("email", "en", [], "Tell them the Summit 40L backpack is 20% off.")
    assert discount[0].brief.startswith("Tell them the Trail Runner 2 shoes are 10% off")
    launch = examples_for("email", "ja", [], "新しいレインジャケットを紹介する。")
    assert "紹介" in launch[0].brief


def test_a_second_attempt_sees_other_examples_than_the_first() -> None:
    brief = "Introduce the new Rain Cover for day packs."
    first = _briefs(examples_for("email", "en", [], brief))
    second = _briefs(examples_for("email", "en", [], brief, variant=1))
    assert first[0] not in second and first[1] == second[0]


def test_nothing_alike_keeps_the_pool_order_and_a_small_pool_is_shown_whole() -> None:
    pool = example_pool("email", "en", [])
    assert _briefs(examples_for("email", "en", [], "zzz qqq")) == _briefs(pool[:EXAMPLES_SHOWN])
    assert examples_for("reply", "en", [], "anything", variant=1) == BUILTIN_EXAMPLES[("reply", "en")]


def test_a_brands_own_examples_replace_the_built_in_pool() -> None:
    own = [Example(kind="email", language="en", brief=f"Brief {i} about kayaks",
                   contact={"first_name": "{first_name}"}, output={"body": "b"}) for i in range(3)]
    own.append(Example(kind="email", language="en", brief="Announce the canoe race",
                       contact={"first_name": "{first_name}"}, output={"body": "b"}))
    assert example_pool("email", "en", own) == own
    assert examples_for("email", "en", own, "The canoe race is on")[0].brief == "Announce the canoe race"
    assert example_pool("email", "ja", own) == BUILTIN_EXAMPLES[("email", "ja")]
