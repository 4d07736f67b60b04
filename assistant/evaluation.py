"""Answer evaluation: fact recall, citation precision, unsupported claims and latency.

A line of the question file (eval/dev_answers.jsonl):
{"id", "question", "kind": "fact"|"absent"|"summary"|"followup", "expected_facts": ["a|b", ...],
 "expected_citations": [{"media", "start", "end"}], "history": [{"role", "content"}]}
A fact counts when any of its "|" alternatives is in the answer (case-insensitive). A citation
is precise when it lands on an expected window (the retrieval match rule). For an "absent"
question the right answer cites nothing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipcite.assistant.agent import Assistant, Reply, Turn
from clipcite.assistant.evidence import split_sentences
from clipcite.retrieval.evaluation import matches, read_jsonl
from clipcite.retrieval.schema import Moment


@dataclass
class Question:
    id: str
    question: str
    kind: str
    expected_facts: list[str]
    expected_citations: list[dict[str, Any]]
    history: list[Turn] = field(default_factory=list)


def load_questions(path: Path) -> list[Question]:
    return read_jsonl(path, lambda row: Question(
        row["id"], row["question"], row["kind"], row.get("expected_facts", []),
        row.get("expected_citations", []),
        [Turn(t["role"], t["content"]) for t in row.get("history", [])]), "question")


def fact_found(fact: str, answer: str) -> bool:
    text = " ".join(answer.lower().split())
    return any(alt.strip().lower() in text for alt in fact.split("|") if alt.strip())


@dataclass
class Scored:
    question: Question
    reply: Reply
    facts_found: int
    citations_ok: int

    @property
    def refused(self) -> bool:
        return not self.reply.citations


def score(q: Question, reply: Reply) -> Scored:
    found = sum(fact_found(f, reply.answer) for f in q.expected_facts)
    ok = 0
    for c in reply.citations:
        moment = Moment(c.media_id, c.path, c.title, c.start, c.end, 0.0, "transcript", c.text)
        ok += any(matches(moment, w) for w in q.expected_citations)
    return Scored(q, reply, found, ok)


@dataclass
class AnswerReport:
    n: int
    fact_recall: float
    citation_precision: float
    unsupported_rate: float
    absent_correct: float
    absent_cited: int
    first_token_p50: float
    total_p50: float
    total_p95: float
    rows: list[Scored]


def evaluate_answers(assistant: Assistant, questions: Sequence[Question]) -> AnswerReport:
    return report([score(q, assistant.ask(q.question, q.history)) for q in questions])


def report(rows: Sequence[Scored]) -> AnswerReport:
    rows = list(rows)
    present = [r for r in rows if r.question.kind != "absent"]
    absent = [r for r in rows if r.question.kind == "absent"]
    facts = sum(len(r.question.expected_facts) for r in present)
    cited = sum(len(r.reply.citations) for r in present)
    sentences = sum(len(split_sentences(r.reply.answer)) for r in present if not r.refused)
    unsupported = sum(len(r.reply.unsupported) for r in present if not r.refused)
    firsts = [r.reply.timings.get("first_token", r.reply.timings.get("total", 0.0)) for r in rows]
    totals = sorted(r.reply.timings.get("total", 0.0) for r in rows)
    return AnswerReport(
        n=len(rows),
        fact_recall=sum(r.facts_found for r in present) / facts if facts else 0.0,
        citation_precision=sum(r.citations_ok for r in present) / cited if cited else 0.0,
        unsupported_rate=unsupported / sentences if sentences else 0.0,
        absent_correct=sum(r.refused for r in absent) / len(absent) if absent else 1.0,
        absent_cited=sum(len(r.reply.citations) for r in absent),
        first_token_p50=statistics.median(firsts) if firsts else 0.0,
        total_p50=statistics.median(totals) if totals else 0.0,
        total_p95=totals[min(len(totals) - 1, int(0.95 * len(totals)))] if totals else 0.0,
        rows=rows,
    )


def report_table(r: AnswerReport, named: Sequence[tuple[str, AnswerReport]] = ()) -> str:
    """The report as a markdown table; `named` adds rows (e.g. the tuning and check halves)."""
    rows = [("all", r), *named]
    return "\n".join([
        "| set | questions | fact recall | citation precision | unsupported claims | "
        "absent refused | absent cited | first token p50 s | answer p50 s | answer p95 s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(f"| {name} | {x.n} | {x.fact_recall:.2f} | {x.citation_precision:.2f} | "
          f"{x.unsupported_rate:.2f} | {x.absent_correct:.2f} | {x.absent_cited} | "
          f"{x.first_token_p50:.1f} | {x.total_p50:.1f} | {x.total_p95:.1f} |"
          for name, x in rows),
    ])
