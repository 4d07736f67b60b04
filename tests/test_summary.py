"""Which recording a summary request names, and what kind of item a line is (no model needed)."""

from assistant.summary import _asked_for, _due, _owner, _title_in, classify
from retrieval.schema import Moment
from retrieval.tools import RecordingSummary


def _rec(media_id: str, title: str) -> RecordingSummary:
    return RecordingSummary(media_id, title, f"/{media_id}.mp4", 60.0, None, [], {})


RECS = [_rec("a", "Q3 planning meeting"), _rec("b", "Security training"),
        _rec("c", "Onboarding walkthrough")]


def test_a_title_named_by_its_main_words_is_picked() -> None:
    assert _title_in("What were the action items in the planning meeting?", RECS).media_id == "a"
    assert _title_in("summarize the security training please", RECS).media_id == "b"


def test_no_title_named_leaves_it_to_search() -> None:
    assert _title_in("what did we decide about the launch?", RECS) is None
    # "the meeting" names the only meeting, but not one of two.
    assert _title_in("summarize the meeting", RECS).media_id == "a"
    assert _title_in("summarize the meeting", [*RECS, _rec("d", "Weekly meeting")]) is None


LINES = {  # the generated Q3 planning meeting as tiny.en heard it
    "Mark, please send the final spending plan to finance before Friday.":
        ("action", "Mark", "before Friday"),
    "Sure, I will send it before Friday.": ("action", "Speaker 2", "before Friday"),
    "Read. Tom will write the jump posting for the QA tester next week.":
        ("action", "Tom", "next week"),
    "Good. We will also move the weekly status call from Monday to Wednesday at 10am.":
        ("decision", None, None),
    "And it's decided the launch date is September 15th.": ("decision", None, None),
    "The finance team approved a budget on $48,000 for the third quarter.":
        ("decision", None, None),
    "Today we need to agree on the budget and the launch date.": ("point", None, None),
    "Our next planning meeting is on August 3rd.": ("point", None, None),
    "The biggest risk is the single sign-on integration.": ("point", None, None),
}


def test_a_lines_wording_says_whether_it_is_an_action_or_a_decision():
    for text, (kind, owner, due) in LINES.items():
        line = Moment(media_id="m", path="/m.wav", title="Q3", start=0.0, end=1.0, score=0.0,
                      modality="transcript", text=text, speaker="Speaker 2")
        got = classify(text)
        assert got == kind, text
        if kind == "action":
            assert (_owner(line), _due(text)) == (owner, due), text


def test_a_question_can_ask_for_one_kind_of_item():
    assert _asked_for("What were the action items in the planning meeting?") == ("action",)
    assert _asked_for("what did we decide in the Q3 meeting") == ()
    assert _asked_for("list the decisions from the kickoff") == ("decision",)
    assert _asked_for("Summarize the security training") == ()
