"""The answer set (eval/answers.jsonl + eval/answers_split.json) is valid and meets issue #17's
minimums; needs neither the media nor the index."""

from __future__ import annotations

import json

from clipcite.assistant.evaluation import load_questions
from eval import answer_set
from clipcite.retrieval.evaluation import half_of, load_split


def test_the_file_loads_and_has_no_problems():
    assert load_questions(answer_set.QUESTIONS)
    assert answer_set.problems(check_times=False) == []


def test_counts_meet_the_issue():
    rows = answer_set.rows()
    kinds = [r["kind"] for r in rows]
    assert len(rows) >= 60
    assert kinds.count("absent") >= 0.1 * len(rows)
    assert kinds.count("followup") >= 10
    assert sum(r.get("parts") == 2 for r in rows) >= 10
    cited = {w["media"] for r in rows for w in r["expected_citations"]}
    assert len(cited) >= 15
    sources = answer_set.recordings()
    assert {sources[n] for n in cited} == {"real", "generated", "qmsum"}


def test_split_is_by_recording_and_mixed():
    data = json.loads(answer_set.SPLIT.read_text(encoding="utf-8"))
    assert not set(data["tune"]) & set(data["check"])
    assert "how" in data
    split = load_split(answer_set.SPLIT)
    sources = answer_set.recordings()
    for half in ("tune", "check"):
        assert {sources[n] for n, h in split.items() if h == half} == {"real", "generated", "qmsum"}
    for r in answer_set.rows():
        for w in r["expected_citations"]:
            assert w["media"] in split, (r["id"], w["media"])
    halves = [half_of(r["expected_citations"], r["id"], split) for r in answer_set.rows()
              if r["kind"] == "absent"]
    assert {"tune", "check"} == set(halves)


def test_dev_questions_are_not_reused():
    dev = {json.loads(line)["question"] for line in
           (answer_set.REPO / "eval" / "dev_answers.jsonl").read_text().splitlines() if line}
    assert not dev & {r["question"] for r in answer_set.rows()}
