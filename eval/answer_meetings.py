"""Generated business meetings for the answer set (eval/answers.jsonl): 3-4 espeak-ng voices,
first names, product and customer names, numbers, dates, decisions and action items, with
two-part facts whose second half is said in the next line, often by another speaker ("how
much was asked for" / "how much was approved").

The scripts below are data; rendering is eval/fixtures.py's (`ensure`: one espeak-ng wav per
sentence, trimmed to its audible extent and laid on one sample clock, so every line's start
and end are known to the sample). Two meetings get light room noise and a short echo mixed
in afterwards by eval/noisy_meetings.py's `add_room_noise` (the line times do not move).
The voices are the ones eval/meetings.py, eval/room_meetings.py and eval/noisy_meetings.py
already use, renamed to the meeting's people.

    .venv/bin/python eval/answer_meetings.py OUT_DIR    # the meetings + OUT_DIR/answer-meetings.json

OUT_DIR/answer-meetings.json: {"files": {name: {"title", "duration", "version", "snr_db",
"voices", "items": [{"kind": "speech", "text", "start", "end", "speaker"}]}}} - the exact
line times the answer set's citation windows are copied from. A file whose version matches
is reused, so a second build takes well under a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval import fixtures  # noqa: E402
from eval.fixtures import Line, Meeting, Turn, Voice  # noqa: E402
from eval.meetings import VOICES as MEETING_VOICES  # noqa: E402
from eval.noisy_meetings import PEOPLE as CALL_VOICES, add_room_noise  # noqa: E402
from eval.room_meetings import VOICES as ROOM_VOICES  # noqa: E402

TIMES_NAME = "answer-meetings.json"
RENDER_VERSION = 1  # bump when the way meetings are rendered changes


def person(name: str, voice: Voice) -> Voice:
    """An existing generator voice, speaking as `name` in the manifest."""
    return dataclasses.replace(voice, name=name)


def _turns(*rows: tuple[Voice, str | tuple[str, ...]]) -> tuple[Turn, ...]:
    return tuple(Turn(who, tuple(Line(t) for t in ((lines,) if isinstance(lines, str) else lines)))
                 for who, lines in rows)


@dataclass(frozen=True)
class AnswerMeeting:
    meeting: Meeting  # eval/fixtures.py spec: name (its suffix picks the container) + turns
    title: str        # what the index calls it (the file name, capitalised)
    snr_db: float | None = None  # light room noise at this speech-to-noise ratio, or none

    @property
    def name(self) -> str:
        return self.meeting.name


# -- the people -------------------------------------------------------------------------------
RACHEL = person("Rachel", CALL_VOICES["Priya"])
VICTOR = person("Victor", CALL_VOICES["Dmitri"])
OLIVIA = person("Olivia", CALL_VOICES["Ingrid"])
HUGO = person("Hugo", CALL_VOICES["Kenji"])

MARCUS = person("Marcus", MEETING_VOICES["Alan"])
SOFIA = person("Sofia", MEETING_VOICES["Beth"])
GRACE = person("Grace", MEETING_VOICES["Dana"])

NINA = person("Nina", CALL_VOICES["Nadia"])
OSCAR = person("Oscar", CALL_VOICES["Tobias"])
JULIA = person("Julia", CALL_VOICES["Anika"])
PETER = person("Peter", CALL_VOICES["Mateo"])

SIMON = person("Simon", ROOM_VOICES["Gus"])
HANNAH = person("Hannah", ROOM_VOICES["Fay"])
LEO = person("Leo", ROOM_VOICES["Jon"])

MARTHA = person("Martha", ROOM_VOICES["Ivy"])
CHLOE = person("Chloe", MEETING_VOICES["Dana"])
BEN = person("Ben", MEETING_VOICES["Carl"])
RAVI = person("Ravi", ROOM_VOICES["Hal"])


# -- the meetings -----------------------------------------------------------------------------
WAREHOUSE = AnswerMeeting(Meeting("warehouse-app-budget.mp3", _turns(
    (RACHEL, ("Good afternoon, everyone. This is the budget review for the Harbor warehouse app.",
              "We need a decision on the second phase before the end of the month.")),
    (VICTOR, "Engineering asked for 60,000 dollars for phase two."),
    (OLIVIA, "Finance approved 45,000 dollars. The rest has to wait until the next "
             "financial year."),
    (HUGO, ("Operations needs barcode scanning most of all.",
            "Our pickers lose about twenty minutes per shift looking for items.")),
    (VICTOR, "With 45,000 dollars we can build barcode scanning and offline mode, but not "
             "forklift tracking."),
    (RACHEL, "Then forklift tracking is dropped for this year."),
    (HUGO, "I suggest we run the pilot in the Leeds warehouse first, because it has the "
           "oldest stock system."),
    (VICTOR, "We can start the Leeds pilot on April 7th."),
    (OLIVIA, "Victor, I need a cost report from you on the first Monday of every month."),
    (VICTOR, "Fine. I will send it to you and to Rachel."),
    (RACHEL, ("To sum up: phase two gets 45,000 dollars, and the pilot starts in Leeds on "
              "April 7th.",
              "Hugo, please pick three pickers to test the app in the first week.")),
    (HUGO, "Will do. I'll send you their names by Thursday."),
    (RACHEL, "Thanks, everyone."),
)), "Warehouse app budget")

CRM = AnswerMeeting(Meeting("crm-vendor-choice.wav", _turns(
    (MARCUS, "Let's decide on the new CRM today. We looked at two vendors, Pipewell and "
             "Salesdock."),
    (GRACE, ("Pipewell quoted 38 dollars per user per month.",
             "Salesdock quoted 31 dollars per user per month.")),
    (SOFIA, ("But Salesdock has no connector for our billing system, so we would have to "
             "build one.",
             "That is about six weeks of work for my team.")),
    (MARCUS, "How many licences do we need?"),
    (GRACE, "Ninety licences for sales and twenty for customer support, so 110 in total."),
    (SOFIA, "Pipewell also keeps our data in Frankfurt, which our data protection officer "
            "asked for."),
    (MARCUS, "Then we choose Pipewell."),
    (GRACE, "I will negotiate a three-year contract and ask for a ten percent discount."),
    (MARCUS, "Good. Sofia, when can the migration start?"),
    (SOFIA, "We can move the customer records in the second week of June."),
    (GRACE, "I'll have the contract ready for signature by May 20th."),
    (MARCUS, ("The old system, Contacta, will be switched off at the end of July.",
              "Thanks, that's a clear decision.")),
)), "Crm vendor choice", snr_db=18.0)

ESCALATION = AnswerMeeting(Meeting("brightwater-escalation.m4a", _turns(
    (NINA, "Brightwater Hotels reported that their booking widget was down on Saturday "
           "evening."),
    (OSCAR, "The outage lasted about three hours."),
    (JULIA, "Their manager says they lost around 420 bookings during that time."),
    (OSCAR, "The cause was an expired security certificate on the payment server."),
    (NINA, "Why didn't our monitoring catch it?"),
    (OSCAR, "The alert went to an old email address that nobody reads any more."),
    (PETER, "That should not happen again. How much are they asking for?"),
    (JULIA, "They want a credit of 15,000 dollars."),
    (PETER, "We will offer 9,000 dollars, which is one month of their subscription."),
    (PETER, "Julia, can you call their general manager, Laura Kim?"),
    (JULIA, "Yes, I'll call her tomorrow morning."),
    (OSCAR, "From next Monday, all certificates will be renewed automatically."),
    (NINA, "And I'll send the alerts to the on-call phone by Wednesday."),
    (PETER, "Oscar, please send me a written incident report by Friday."),
    (OSCAR, "Will do."),
)), "Brightwater escalation")

OFFICE = AnswerMeeting(Meeting("office-move.wav", _turns(
    (SIMON, ("Our lease on Baker Street ends on September 30th.",
             "The new office is on the third floor of the Riverside building, with room for "
             "85 desks.")),
    (LEO, "The rent there is 14,500 pounds a month, about 2,000 more than we pay today."),
    (HANNAH, "We will grow to 70 people by the end of the year, so 85 desks gives us room."),
    (LEO, "The move itself is estimated at 22,000 pounds, including new furniture."),
    (SIMON, "The movers can do it over the weekend of September 27th."),
    (HANNAH, "Staff will work from home on Friday the 26th, so that IT can pack the "
             "equipment."),
    (LEO, "I approve the move. Simon, please sign the lease by next Tuesday."),
    (SIMON, "I will."),
    (HANNAH, "About hiring. We have two open roles: a data analyst and a receptionist for "
             "the new building."),
    (LEO, ("The receptionist can start in October.",
           "The data analyst has to wait until January, because this year's budget is spent.")),
    (HANNAH, "Then I'll post the receptionist job on Monday."),
    (SIMON, "One more thing: Riverside has a bike room for 30 bikes, and showers on every "
            "floor."),
)), "Office move", snr_db=20.0)

CAMPAIGN = AnswerMeeting(Meeting("spring-campaign-review.mp3", _turns(
    (MARTHA, "Let's look back at the Kestrel spring campaign."),
    (CHLOE, ("We spent 18,000 dollars on ads over six weeks.",
             "That brought in 2,300 sign-ups, about eight dollars per sign-up.")),
    (BEN, "The landing page converted at 4.2 percent, the best we've ever had."),
    (RAVI, "But only 140 of those sign-ups became paying customers."),
    (MARTHA, "Which channel worked best?"),
    (CHLOE, "Podcast ads. They cost the least, about five dollars per sign-up."),
    (BEN, "Video ads were the worst, at over twenty dollars per sign-up."),
    (MARTHA, "Then we stop the video ads for the summer campaign and double the podcast "
             "budget."),
    (RAVI, "Sales would like the follow-up email on day three of the trial, not day seven."),
    (BEN, "I can change that in the email tool this week."),
    (MARTHA, ("Good. The summer campaign starts on June 2nd.",
              "Chloe, please send me the plan by May 16th.")),
    (CHLOE, "Yes, you'll have it by then."),
)), "Spring campaign review")

MEETINGS: tuple[AnswerMeeting, ...] = (WAREHOUSE, CRM, ESCALATION, OFFICE, CAMPAIGN)


# -- rendering --------------------------------------------------------------------------------
def version(m: AnswerMeeting) -> str:
    data = repr((RENDER_VERSION, fixtures.spec_version(m.meeting), m.snr_db))
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def load_times(out_dir: Path) -> dict:
    try:
        data = json.loads((Path(out_dir) / TIMES_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"files": {}}
    return data if isinstance(data.get("files"), dict) else {"files": {}}


def _render(m: AnswerMeeting, out_dir: Path) -> dict:
    """Render with eval/fixtures.py; a noisy meeting is rendered clean to a scratch folder,
    then mixed with room noise into out_dir."""
    if m.snr_db is None:
        entry = fixtures.ensure(m.meeting, out_dir)
    else:
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".answer-") as tmp:
            entry = fixtures.ensure(m.meeting, Path(tmp))
            seed = int(hashlib.sha256(m.name.encode()).hexdigest()[:6], 16)
            partial = out_dir / f".{m.name}.partial.wav"
            add_room_noise(Path(tmp) / m.name, partial, m.snr_db, seed, Path(tmp))
            os.replace(partial, out_dir / m.name)
    return {"title": m.title, "duration": entry["duration"], "version": version(m),
            "snr_db": m.snr_db, "voices": entry["voices"], "items": entry["items"]}


def build(out_dir: Path, meetings: tuple[AnswerMeeting, ...] = MEETINGS) -> dict:
    """Render the meetings that are missing or outdated in out_dir; returns (and writes)
    OUT_DIR/answer-meetings.json with every line's exact start and end."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    times = load_times(out_dir)
    for m in meetings:
        entry = times["files"].get(m.name)
        if not ((out_dir / m.name).exists() and entry and entry.get("version") == version(m)):
            times["files"][m.name] = _render(m, out_dir)
    tmp = out_dir / f".{TIMES_NAME}.tmp"
    tmp.write_text(json.dumps(times, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / TIMES_NAME)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    times = build(parser.parse_args().out)
    for name, entry in times["files"].items():
        people = ", ".join(entry["voices"])
        print(f"{name}: {entry['duration']:.1f} s, {len(entry['items'])} lines, {people}"
              + (f", noise {entry['snr_db']:.0f} dB SNR" if entry["snr_db"] else ""))


if __name__ == "__main__":
    main()
