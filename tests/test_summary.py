"""Which recording a summary request names (no model needed)."""

from assistant.summary import _title_in
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
