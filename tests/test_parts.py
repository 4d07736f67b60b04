"""Multi-part questions are split by their form (assistant/parts.py)."""

from __future__ import annotations

import pytest

from clipcite.assistant.parts import question_parts


@pytest.mark.parametrize("question, parts", [
    ("Which room is the workshop in, and when does it start?",
     ["Which room is the workshop in", "when does it start room workshop"]),
    ("What is the budget? Who approved it?", ["What is the budget", "Who approved it budget"]),
    ("Who is sending the plan to finance, and by when?",
     ["Who is sending the plan to finance", "by when sending plan finance"]),
    ("What was decided about pricing and why?",
     ["What was decided about pricing", "why decided pricing"]),
])
def test_each_question_in_a_message_is_a_part(question, parts):
    assert question_parts(question) == parts


@pytest.mark.parametrize("question", [
    "What did Tom and Mary decide?",  # "and" between names
    "When we met, what did Anna say?",  # a clause before the question
    "Summarize the discussion about the budget and the timeline.",
    "What?",
    "Who? What? When? Where? Why?",  # more parts than are worth searching apart
])
def test_a_single_question_stays_whole(question):
    assert question_parts(question) == [question]
