"""Which recording a summary request names, and what kind of item a line is (no model needed)."""

from clipcite.assistant.summary import _asked_for, _due, _owner, _title_in, classify, topic_words
from clipcite.retrieval.schema import Moment
from clipcite.retrieval.tools import RecordingSummary


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


def test_a_summary_of_part_of_a_recording_names_its_topic():
    title = "IS1006c"
    assert topic_words("Summarize the whole meeting.", title) == []
    assert topic_words("Can you summarize the Q3 planning meeting?", "Q3 planning meeting") == []
    assert topic_words("Summarize the discussion in IS1006c", title) == []
    assert topic_words("What were the action items in the planning meeting?",
                       "Planning meeting") == []
    assert topic_words("Summarize the discussion about the remote's materials.", title) == \
        ["remote's", "materials"]
    assert topic_words("Give me an overview of what was said about the budget cuts", title) == \
        ["budget", "cuts"]


def test_a_long_recording_is_represented_by_a_central_line_of_each_stretch():
    import numpy as np

    from clipcite.assistant.summary import representative

    def line(i: int, words: int) -> Moment:
        return Moment(media_id="m", path="/m.wav", title="T", start=i * 5.0, end=i * 5.0 + 4,
                      score=0.0, modality="transcript",
                      text=" ".join(f"point{i}word{j}" for j in range(words)))

    lines = [line(i, 3 if i % 4 == 1 else 10) for i in range(40)]
    vectors = np.zeros((40, 4), np.float32)
    vectors[:20, 0] = 1.0  # two topics, one per half of the meeting
    vectors[20:, 1] = 1.0
    vectors[7] = vectors[27] = [0.6, 0.6, 0.5, 0.0]  # off-centre lines
    assert representative(lines, vectors, budget=10_000) == list(range(40))  # short: all
    picked = representative(lines, vectors, budget=600)  # two sections of the budget
    assert len(picked) == 2 and picked[0] < 20 <= picked[1]
    assert all(len(lines[i].text.split()) == 10 and i not in (7, 27) for i in picked)


def test_a_recording_named_by_name_and_kind_matches_only_a_title_with_every_word():
    from clipcite.assistant.named import matching, named_recording

    recs = [*RECS, _rec("d", "Phone call"), _rec("e", "Q4 planning meeting")]
    summarize = lambda m: named_recording(m, None, definite=True)  # noqa: E731
    assert summarize("Summarize the HR phone call") == "HR phone call"
    assert matching(recs, "HR phone call") == []  # not "Phone call"
    assert [r.media_id for r in matching(recs, "phone call")] == ["d"]
    assert [r.media_id for r in matching(recs, summarize(
        "Give me a recap of the security training video"))] == ["b"]
    assert [r.media_id for r in matching(recs, "Q3 planning meeting")] == ["a"]
    assert len(matching(recs, "planning meeting")) == 2  # which one: asked, never guessed
    # A topic, an indefinite kind or a bare kind names no recording.
    for message in ("Summarize the discussion about the weekly status call",
                    "Summarize how people fell for a phishing call", "Summarize the meeting"):
        assert summarize(message) is None, message
    # The router's reading counts when the message writes it as a recording's name.
    assert named_recording("what did Ken say in the board meeting?", "board") == "board meeting"
    assert named_recording("who is our security officer?", "security officer") is None


def test_a_loose_title_reading_picks_a_recording_only_when_it_names_most_of_the_title():
    from clipcite.assistant.named import identified

    recs = [*RECS, _rec("w", "Warehouse app budget")]
    assert identified(recs, "budget") == []  # a topic, one word of three
    assert identified(recs, "call") == []  # a kind names nothing
    assert [r.media_id for r in identified(recs, "warehouse budget")] == ["w"]
    assert [r.media_id for r in identified(recs, "security training")] == ["b"]
    assert [r.media_id for r in identified(recs, "Q3 planning")] == ["a"]
    assert identified(recs, "planning meeting") == []  # half a title: could be a topic
