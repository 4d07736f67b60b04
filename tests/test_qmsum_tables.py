"""eval/qmsum.py's latency table: clipcite's replies by kind of question and half (#16 asks for
p50 / p95 by kind, so a kind's slow replies are not averaged away by the other's)."""

from __future__ import annotations

from eval import qmsum


def _row(query: str, intent: str, first: float, total: float,
         system: str = "clipcite") -> dict:
    return {"query": query, "system": system, "intent": intent, "first_token_s": first,
            "total_s": total}


def test_latency_is_reported_by_kind_of_question_and_half():
    half = {"TS3009c": "tune", "covid_2": "check"}
    rows = [_row("TS3009c#0", "answer", 5.0, 7.0), _row("TS3009c#1", "find", 7.0, 9.0),
            _row("TS3009c#2", "summarize", 9.0, 20.0), _row("covid_2#0", "answer", 6.0, 8.0),
            _row("covid_2#1", "extract", 0.0, 0.0, system="naive extract")]
    table = {(kind, split): rest for kind, split, *rest in qmsum.latency_rows(rows, half)}
    assert set(table) == {("question", "tune"), ("question", "check"), ("question", "all"),
                          ("topic summary", "tune"), ("topic summary", "all")}
    assert table[("question", "tune")] == [2, 5.0, 7.0, 7.0, 9.0]  # n, first p50/p95, whole
    assert table[("question", "all")] == [3, 6.0, 7.0, 8.0, 9.0]
    assert table[("topic summary", "tune")] == [1, 9.0, 9.0, 20.0, 20.0]
