"""bench/quality.py's checks prove themselves here: a plain good email for every case of the
evaluation set passes them and Baton's guards alike; each planted defect fails the checks and
is rejected by the guards (the recall the bench reports); the quick mode runs the real model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.evalset import BRIEFS, make
from bench.planted import defects, good, planted
from bench.quality import check, eval_policy, main, rules_for
from core.engine.engine import Engine
from core.engine.ledger import Ledger
from core.store import open_store
from core.tasks.builtin import default_task_kinds
from core.tasks.kinds import Task

DATA = make()
POLICY = eval_policy(DATA)
RULES = rules_for(POLICY, DATA)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    path = Path(tmp_path_factory.mktemp("q")) / "q.db"
    return Engine(POLICY, {}, default_task_kinds(), Ledger(open_store(f"sqlite:///{path}")))


def task(case: object) -> Task:
    return Task(kind="email", context=case.contact, brief=case.brief.text,  # type: ignore[attr-defined]
                tenant="eval", language=case.language)  # type: ignore[attr-defined]


def test_the_evaluation_set_is_what_the_issue_asks_and_repeatable() -> None:
    assert len(DATA.cases) >= 200 and make().cases == DATA.cases
    assert Counter(c.language for c in DATA.cases).keys() == {"en", "ja"}
    assert Counter(c.style for c in DATA.cases).keys() == {"hubspot", "salesforce", "spreadsheet"}
    assert sum(len(b) for b in BRIEFS.values()) >= 20
    assert {b.kind for b in BRIEFS["en"]} == {"launch", "discount", "event", "re-engagement",
                                              "thank-you"}


def test_a_good_email_passes_the_checks_and_the_guards_for_every_case(engine: Engine) -> None:
    for case in DATA.cases:
        assert check(case, good(case), RULES) == [], case.id
        assert engine.review(task(case), good(case)) == [], case.id


def test_every_planted_defect_fails_the_checks() -> None:
    for case in DATA.cases[:60]:
        for defect, bad in defects(case):
            assert check(case, bad, RULES), (case.id, defect)
    assert check(DATA.cases[0], None, RULES) == ["generated: no output"]


def test_the_guards_reject_the_planted_bad_outputs(engine: Engine) -> None:
    items = planted(DATA)
    assert len({d for _, _, d in items}) >= 10 and len(items) >= 200
    missed = [(t.id, d) for t, bad, d in items if not engine.review(t, bad)]
    assert len(missed) / len(items) <= 0.05, missed  # guard_recall >= 0.95


@pytest.mark.model
def test_quick_mode_scores_the_real_models_copy(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--n", "3"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = dict(part.split("=") for part in last.split())
    assert figures.keys() == {"useful", "written_bad", "guard_recall"}
    assert 0 <= float(figures["useful"]) <= 1 and float(figures["guard_recall"]) >= 0.95
    assert float(figures["written_bad"]) == 0.0
