"""Calibrate the answer gate (assistant.agent.RELEVANCE_THRESHOLD) on the tuning halves and
report it on the check halves (run on demand; needs the QMSum and development indexes).

    .venv/bin/python eval/gate.py [--qmsum-index DIR] [--dev-index DIR] [--judge]

The gate decides, before the model is asked, whether any retrieved moment is about the
question: a hit's score is the better of its own e5 similarity to the question (or to one of
its parts, assistant/parts.py) and that of the best top passage around it (a stretch of
several turns, tools.passages_about: a question about a discussion is closer to the stretch
than to any one line of it); it must reach the threshold. Questions:
- QMSum (eval/qmsum_split.json): every specific query asked of its own meeting is answerable;
  the same query asked of a meeting from another source (an AMI product-design query of an
  ICSI research meeting or a parliament committee, and so on) is about an absent topic;
- the development answers (eval/dev_split.json) and the larger answer set
  (eval/answers_split.json): "absent" questions are absent, "fact" ones answerable, searched
  across the whole archive of each.
Measured 2026-12-07, both variants in the same state of the index (answerable let through /
absent refused, tuning half; check half):
- lines alone at 0.83 (the gate before): QMSum 0.694 / 0.855; 0.726 / 0.832, development
  1.000 / 0.667; 1.000 / 0.500. Re-tuned alone (0.815): QMSum 0.879 / 0.726; 0.858 / 0.690,
  development absent refused 0.333; 0.500.
- with passages, tuned (0.8425, in force): QMSum 0.806 / 0.927; 0.841 / 0.894, development
  1.000 / 0.667; 1.000 / 1.000. Better on both halves of both sets on both counts.
With the 90-question answer set (eval/answers.jsonl, when its index is built) as a third set
and each set weighing the same in the choice, the tuning halves still choose 0.8425; there it
lets 0.871 / 0.733 of answerable questions through and refuses 0.600 / 0.600 of absent ones
(the model refuses the rest: every absent check-half question was refused in the end).
Reading each hit with its lines around it (--with-context; 2026-12-06: 0.790 / 0.798 on QMSum's
tuning half) let two absent development questions reach the model, and was not kept.
With --judge the local model also judges the questions whose best score lies in BAND, and a
threshold and a weight for the judgement are chosen together (choose_combined), on every
second QMSum query (--qmsum-every 2). Session 14's judge was a prompt of its own
(prompts/judge.md: the three best hits, p("yes")); since session 15 the judgement is read from
the answer prompt itself (Assistant.judge: one minus the probability that the answer starts
"Not mentioned", moved on a log scale by agent.judged_shift; cached in
tests/artifacts/gate-answerable.json), whose evaluated state the answer then reuses.
Answerable let through / absent refused, e5 alone -> e5 + the answer prompt's judgement
(0.87, 0.11), 2026-12-07: QMSum tune 0.812 / 0.875 -> 0.906 / 0.859, check 0.810 / 0.897 ->
0.897 / 0.793; development tune 1.000 / 0.667 -> 1.000 / 1.000, check 1.000 / 1.000 -> 0.857
/ 1.000; answer set tune 0.871 / 0.600 -> 0.871 / 1.000, check 0.733 / 0.400 -> 0.967 /
1.000. Separation (AUC) answer set tune 0.865 -> 0.961, check 0.773 -> 0.967; QMSum 0.930 /
0.927 on both. (Session 14's judge, same sets: QMSum 0.938 / 0.750 and 0.931 / 0.741, answer
set 0.968 / 0.600 and 0.900 / 0.600.)
The threshold is the one that best separates the two on the tuning halves (balanced accuracy:
the mean of the share of answerable questions let through and of absent ones refused,
averaged over the sets);
both halves are reported beside the threshold in force, so a choice that only fits the
tuning half shows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval import qmsum  # noqa: E402

K = 5


def _family(meeting_id: str) -> str:
    return qmsum.source_of(meeting_id)


CONTEXT = False  # score hits alone (as the assistant does), or with the lines around them


class Gated(NamedTuple):
    """One question as the gate sees it: its half, whether it is answerable, the e5 score of
    its best hit, and (with --judge, in the judged band) the model's probability of "yes"."""

    half: str
    answerable: bool
    score: float
    judged: float | None = None


class Judge:
    """The model's judgement (Assistant.judge) of the moments a question would be answered
    from, cached on disk by set, question and scope: the local model takes seconds a question
    on 2 cores."""

    def __init__(self, cache: Path) -> None:
        from clipcite.assistant.llm import load_chat_model
        from clipcite.ui.settings import Settings

        self.chat = load_chat_model(Settings.load().llm_config())
        self.cache_path = cache
        self.cache = json.loads(cache.read_text()) if cache.exists() else {}

    def __call__(self, assistant, key: str, question: str, top) -> float | None:
        if key not in self.cache:
            self.cache[key] = assistant.judge(question, top)
            self.cache_path.write_text(json.dumps(self.cache))
        return self.cache[key]


JUDGE: Judge | None = None  # set by --judge
BAND = (0.79, 0.88)  # the scores judged here (the assistant judges within agent.JUDGE_BAND)


def gated(assistant, key: str, half: str, answerable: bool, question: str,
          filters) -> Gated:
    """A question's gate inputs: its best moment's score, alone or with its lines around it,
    and the model's judgement of the moments it would be answered from (agent.candidates)
    when --judge is on and the score is in BAND."""
    from clipcite.assistant.agent import candidates
    from clipcite.retrieval import tools

    assistant.filters = filters  # the gate reads passages as the caller may see them
    found = tools.search_all(assistant.searcher, [question], K, filters)
    if not found:
        return Gated(half, answerable, 0.0)
    contexts = [" ".join(m.text for m in assistant.with_context([hit])[0]) for hit in found] \
        if CONTEXT else []
    scores = assistant.relevance([question], found, contexts)
    best = max(scores, default=0.0)
    judged = None
    if JUDGE is not None and BAND[0] <= best < BAND[1]:
        judged = JUDGE(assistant, key, question, candidates(found, scores))
    return Gated(half, answerable, best, judged)


def qmsum_rows(index: Path, every: int = 1) -> list[Gated]:
    """Each QMSum query (every `every`-th of a meeting's), asked of its meeting and of
    another."""
    from clipcite.assistant.agent import Assistant
    from clipcite.retrieval.filters import Filters

    meetings = qmsum.load_all()
    half = qmsum.load_split(sorted(meetings))
    searcher = qmsum.open_clipcite(index)
    media = qmsum.recordings_by_meeting(searcher, sorted(meetings))
    assistant = Assistant(searcher, chat=JUDGE.chat if JUDGE else None)  # judges with --judge
    rows = []
    ids = sorted(media)
    for mid in ids:
        # Another meeting of the same half from another source: its topics are not these.
        others = [o for o in ids if half[o] == half[mid] and _family(o) != _family(mid)]
        for n, q in enumerate(meetings[mid].queries):
            if n % every:
                continue
            own = Filters(recordings=(media[mid],))
            rows.append(gated(assistant, f"qmsum|{q.id}|{mid}", half[mid], True, q.query, own))
            if others:
                other = others[(n + ids.index(mid)) % len(others)]
                elsewhere = Filters(recordings=(media[other],))
                rows.append(gated(assistant, f"qmsum|{q.id}|{other}", half[mid], False,
                                  q.query, elsewhere))
    return rows


def answer_rows(index: Path, questions: Path, split_file: Path) -> list[Gated]:
    """An answer set's fact and absent questions, searched across its whole archive
    (follow-ups and summaries are not gated the same way)."""
    from clipcite.assistant.agent import Assistant
    from clipcite.assistant.evaluation import load_questions
    from clipcite.retrieval.encoders import load_text_encoder
    from clipcite.retrieval.evaluation import half_of, load_split
    from clipcite.retrieval.filters import Filters
    from clipcite.retrieval.index import Index
    from clipcite.retrieval.search import Searcher

    split = load_split(split_file)
    searcher = Searcher(Index(index), load_text_encoder())
    assistant = Assistant(searcher, chat=JUDGE.chat if JUDGE else None)  # judges with --judge
    rows = []
    for q in load_questions(questions):
        if q.kind not in ("fact", "absent"):
            continue
        rows.append(gated(assistant, f"{questions.name}|{q.id}", half_of(
            q.expected_citations, q.id, split), q.kind == "fact", q.question, Filters()))
    return rows


def passes(row: Gated, threshold: float, weight: float | None = None) -> bool:
    """The gate's decision: e5 alone at `threshold`, or with `weight` the e5 score moved by
    judged_shift(p, weight) where the model judged (Assistant.relevant)."""
    from clipcite.assistant.agent import judged_shift

    score = row.score
    if weight is not None and row.judged is not None:
        score += judged_shift(row.judged, weight)
    return score >= threshold


def balanced(rows: Sequence[Gated], threshold: float,
             weight: float | None = None) -> tuple[float, float]:
    """(share of answerable let through, share of absent refused)."""
    yes = [r for r in rows if r.answerable]
    no = [r for r in rows if not r.answerable]
    passed = sum(passes(r, threshold, weight) for r in yes) / max(len(yes), 1)
    refused = sum(not passes(r, threshold, weight) for r in no) / max(len(no), 1)
    return passed, refused


def _tune_score(sets: dict[str, Sequence[Gated]], threshold: float,
                weight: float | None = None) -> float:
    tune = [[r for r in rows if r.half == "tune"] for rows in sets.values()]
    return round(sum(sum(balanced(rows, threshold, weight)) for rows in tune if rows), 9)


def separation(rows: Sequence[Gated], weight: float | None = None) -> float:
    """How well the gate's score orders answerable above absent questions, whatever the
    threshold: the chance that a random answerable one outscores a random absent one (AUC)."""
    from clipcite.assistant.agent import judged_shift

    def score(r: Gated) -> float:
        judged = weight is not None and r.judged is not None
        return r.score + (judged_shift(r.judged, weight) if judged else 0.0)

    yes = np.array([score(r) for r in rows if r.answerable])
    no = np.array([score(r) for r in rows if not r.answerable])
    if not len(yes) or not len(no):
        return float("nan")
    wins = (yes[:, None] > no[None, :]).sum() + 0.5 * (yes[:, None] == no[None, :]).sum()
    return float(wins / (len(yes) * len(no)))


def choose(sets: dict[str, Sequence[Gated]]) -> float:
    """The threshold with the best mean balanced accuracy over the sets' tuning halves (each
    set counts the same, whatever its size)."""
    grid = np.round(np.arange(0.75, 0.90, 0.0025), 4)
    return float(max(grid, key=lambda t: (_tune_score(sets, t), t)))


def choose_combined(sets: dict[str, Sequence[Gated]]) -> tuple[float, float]:
    """(threshold, weight) of the e5 score plus the model's judgement with the best mean
    balanced accuracy over the tuning halves. Of tied pairs, the highest threshold (the
    fewest questions let through), then the middle of its tied weights (a plateau's centre
    moves least on new questions)."""
    grid = [(float(t), float(w)) for t in np.round(np.arange(0.80, 0.88, 0.0025), 4)
            for w in np.round(np.arange(0.0, 0.401, 0.01), 3)]
    scores = {g: _tune_score(sets, *g) for g in grid}
    top = max(scores.values())
    threshold = max(t for (t, w), v in scores.items() if v == top)
    weights = sorted(w for (t, w), v in scores.items() if v == top and t == threshold)
    return threshold, weights[len(weights) // 2]


def main() -> int:
    from clipcite.assistant.agent import (GATE_THRESHOLD, JUDGE_BAND, JUDGE_WEIGHT,
                                          RELEVANCE_THRESHOLD)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum-index", type=Path, default=qmsum.WORK / "index")
    parser.add_argument("--dev-index", type=Path, default=REPO / "tests" / "artifacts" / "dev-index")
    parser.add_argument("--answers-index", type=Path,
                        default=REPO / "tests" / "artifacts" / "answer-index",
                        help="eval/answer_set.py's index (its questions are used when it exists)")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    parser.add_argument("--with-context", action="store_true",
                        help="score hits read with the lines around them (the variant not kept)")
    parser.add_argument("--no-passages", action="store_true",
                        help="score hits by their own lines only, not the passages around them")
    parser.add_argument("--judge", action="store_true",
                        help="also ask the local model about questions in the judged band and "
                             "choose the two-method gate (Assistant.relevant)")
    parser.add_argument("--judge-cache", type=Path,
                        default=REPO / "tests" / "artifacts" / "gate-answerable.json")
    parser.add_argument("--qmsum-every", type=int, default=1, metavar="N",
                        help="only every N-th query of each QMSum meeting (the model is slow)")
    args = parser.parse_args()
    global CONTEXT
    CONTEXT = args.with_context
    if args.no_passages:
        from clipcite.assistant import agent
        agent.PASSAGE_GATE_K = 0
    global JUDGE
    if args.judge:
        JUDGE = Judge(args.judge_cache)
    sets = {"qmsum": qmsum_rows(args.qmsum_index, args.qmsum_every),
            "dev answers": answer_rows(args.dev_index, REPO / "eval" / "dev_answers.jsonl",
                                       REPO / "eval" / "dev_split.json")}
    if args.answers_index.exists():  # eval/answer_set.py build
        sets["answer set"] = answer_rows(args.answers_index, REPO / "eval" / "answers.jsonl",
                                         REPO / "eval" / "answers_split.json")
    if args.json:
        args.json.write_text(json.dumps({k: [r._asdict() for r in v] for k, v in sets.items()}))
    chosen = choose(sets)
    print(f"threshold chosen on the tuning halves: {chosen:.4f} (in force: {RELEVANCE_THRESHOLD})")
    policies: list[tuple[str, float, float | None]] = [
        (f"e5 >= {t:.4f}", t, None) for t in dict.fromkeys([chosen, RELEVANCE_THRESHOLD])]
    if args.judge:
        threshold, weight = choose_combined(sets)
        print(f"e5 + model chosen on the tuning halves: threshold {threshold:.4f}, weight "
              f"{weight:.3f} (in force: {GATE_THRESHOLD}, {JUDGE_WEIGHT}; judged band "
              f"{JUDGE_BAND})")
        policies += [(f"e5 + judged_shift(p, {w:.2f}) >= {t:.4f}", t, w) for t, w in
                     dict.fromkeys([(threshold, weight), (GATE_THRESHOLD, JUDGE_WEIGHT)])]
    print("| set | half | answerable | absent | gate | answerable let through | "
          "absent refused | judged |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows in sets.items():
        for h in ("tune", "check"):
            part = [r for r in rows if r.half == h]
            for label, t, w in policies:
                passed, refused = balanced(part, t, w)
                judged = sum(r.judged is not None for r in part)
                print(f"| {name} | {h} | {sum(r.answerable for r in part)} | "
                      f"{sum(not r.answerable for r in part)} | {label} | {passed:.3f} | "
                      f"{refused:.3f} | {judged if w is not None else '-'} |")
    if args.judge:
        print("\nSeparation (AUC of answerable over absent), e5 alone -> e5 + model at "
              f"weight {JUDGE_WEIGHT}:")
        for name, rows in sets.items():
            for h in ("tune", "check"):
                part = [r for r in rows if r.half == h]
                print(f"- {name}, {h}: {separation(part):.3f} -> "
                      f"{separation(part, JUDGE_WEIGHT):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
