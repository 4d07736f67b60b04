"""Generated calls for measuring speech recognition: 3-4 espeak-ng voices, names, numbers and
product names, with light room noise (pink noise and a short echo) mixed in by ffmpeg.

Each line is written with its proper names and numbers in [brackets]: the reference text is the
line without brackets, and the bracketed terms are what name/number recall counts. The people,
products and customers recur across calls, as they do in one company's archive, so an archive
glossary and the confirmed speaker names apply to every call.

    python eval/noisy_meetings.py OUT_DIR      # call-*.wav + call-*.json (reference, terms)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eval.fixtures import SAMPLE_RATE, Voice, read_wav, synthesize_all, write_wav  # noqa: E402

CONTENT_VERSION = 1  # bump when the rendering changes, so cached calls are rebuilt

PEOPLE = {  # different espeak-ng voices, variants, speeds and pitches
    "Priya": Voice("Priya", "en-us+f2", speed=165, pitch=60),
    "Dmitri": Voice("Dmitri", "en-gb-x-rp+m3", speed=150, pitch=40),
    "Ingrid": Voice("Ingrid", "en-gb+f4", speed=170, pitch=55),
    "Kenji": Voice("Kenji", "en-us+m7", speed=145, pitch=30),
    "Nadia": Voice("Nadia", "en-us+f3", speed=180, pitch=65),
    "Tobias": Voice("Tobias", "en-gb-scotland+m1", speed=155, pitch=50),
    "Mateo": Voice("Mateo", "en+m2", speed=160, pitch=45),
    "Anika": Voice("Anika", "en-us+f5", speed=150, pitch=70),
}

# What a user of this archive would put in its `glossary` setting: products and customers.
GLOSSARY = ("Zentrix", "Quillbase", "Lumora", "Corvex", "Nimbra", "Altamira Foods",
            "Verdant Logistics", "Okafor Health")
# Names confirmed in the speaker store: the speakers, plus colleagues named in earlier calls.
CONFIRMED_NAMES = tuple(PEOPLE) + ("Yusuf", "Leona")


@dataclass(frozen=True)
class Call:
    name: str
    title: str
    snr_db: float  # speech to noise, in dB
    lines: tuple[tuple[str, str], ...]  # (speaker, text with [terms])


CALLS = (
    Call("call-1", "Zentrix renewal review", 18, (
        ("Priya", "Good morning. Today we review the [Zentrix] renewal for [Altamira Foods]."),
        ("Dmitri", "Thanks, [Priya]. Their contract is worth [48,000] dollars a year, and it "
                   "expires on [March 31st]."),
        ("Kenji", "Usage went up [22] percent since the last renewal, mostly in the reporting "
                  "module."),
        ("Priya", "Do they still want the invoice split across [three] departments?"),
        ("Dmitri", "Yes. Their procurement team asked for one purchase order per department."),
        ("Kenji", "I can also offer them [Quillbase] at a [15] percent discount if they sign "
                  "before [April]."),
        ("Priya", "Let's not bundle it yet. [Dmitri], please send the renewal quote by "
                  "[Thursday]."),
        ("Dmitri", "Will do. I'll copy [Nadia] from finance."),
        ("Kenji", "One risk: their IT lead, [Yusuf], wants single sign-on before renewing."),
        ("Priya", "Then it's decided. We renew at the current price, with single sign-on by "
                  "[June]. Thanks, everyone."),
    )),
    Call("call-2", "Lumora launch check-in", 16, (
        ("Ingrid", "Let's start. The [Lumora] app goes to store review on [May 6th]."),
        ("Tobias", "The build is ready. We fixed [14] crash reports last week."),
        ("Nadia", "Marketing has a budget of [12,500] dollars for the launch campaign."),
        ("Mateo", "The beta had [830] testers, and the average rating is [4.6] stars."),
        ("Ingrid", "Good. [Tobias], what is blocking the Android version?"),
        ("Tobias", "The payment screen still uses the old [Nimbra] billing library."),
        ("Nadia", "Finance needs the new library because of the tax rules in [Germany]."),
        ("Mateo", "I can pair with [Tobias] on it tomorrow morning."),
        ("Ingrid", "Then the Android release moves to [May 20th]."),
        ("Nadia", "I will tell the agency to hold half of the campaign until then."),
    )),
    Call("call-3", "Vendor sync with Verdant Logistics", 15, (
        ("Anika", "Hi everyone. [Verdant Logistics] shipped the second batch of scanners on "
                  "[Monday]."),
        ("Kenji", "How many arrived? We ordered [250] units."),
        ("Anika", "[236] arrived. The other [14] are back-ordered until [October]."),
        ("Dmitri", "That leaves the warehouse in [Rotterdam] short for the peak season."),
        ("Kenji", "Can [Verdant] lend us scanners in the meantime?"),
        ("Anika", "They offered [20] rental units at [35] dollars a week each."),
        ("Dmitri", "That is cheaper than a delay. Let's accept the rental."),
        ("Kenji", "I'll ask [Leona] to raise the purchase order today."),
        ("Anika", "And I'll confirm the delivery date with their account manager, [Mateo]."),
    )),
    Call("call-4", "Corvex gateway rollout", 17, (
        ("Tobias", "Quick update on the [Corvex] gateway rollout."),
        ("Priya", "Go ahead, [Tobias]."),
        ("Tobias", "[1,200] laptops are enrolled, which is [86] percent of the company."),
        ("Anika", "What about the offices in [Lisbon] and [Warsaw]?"),
        ("Tobias", "[Lisbon] is done. [Warsaw] starts next week, with [140] devices."),
        ("Priya", "The auditors come on [November 15th]. We need [98] percent by then."),
        ("Anika", "The help desk had [62] tickets about the new sign-in screen."),
        ("Tobias", "Most of them are about the authenticator app. We will send a short video."),
        ("Priya", "Good. [Anika], please add the video to the [Quillbase] handbook."),
        ("Anika", "Sure, I'll do it by [Friday]."),
    )),
    Call("call-5", "Hiring plan for the platform team", 18, (
        ("Nadia", "We have approval for [four] new hires in the platform team."),
        ("Mateo", "I would start with two backend engineers and one site reliability "
                  "engineer."),
        ("Ingrid", "And the fourth?"),
        ("Nadia", "A product designer for [Zentrix]. The salary band is [72,000] to [85,000] "
                  "euros."),
        ("Mateo", "The recruiter, [Leona], already has [30] applications."),
        ("Ingrid", "Let's keep the interviews to [three] rounds this time."),
        ("Nadia", "Agreed. [Ingrid], can you write the take-home exercise?"),
        ("Ingrid", "Yes, I will have a draft on [Wednesday]."),
        ("Mateo", "The first start date we can offer is [September 1st]."),
    )),
    Call("call-6", "Okafor Health escalation", 15, (
        ("Kenji", "[Okafor Health] opened a priority one ticket this morning."),
        ("Anika", "What happened?"),
        ("Kenji", "Their nightly export from [Zentrix] failed [three] nights in a row."),
        ("Dmitri", "We changed the export format in version [5.2]. That is the likely cause."),
        ("Anika", "How many records are affected?"),
        ("Kenji", "About [18,000] patient appointments, but no data was lost."),
        ("Dmitri", "I can ship a patch by [6] p.m. today."),
        ("Anika", "Good. I'll call their operations director, [Yusuf], and explain the plan."),
        ("Kenji", "We should offer them a service credit of [10] percent for the month."),
    )),
    Call("call-7", "Quillbase migration", 17, (
        ("Priya", "The old wiki goes read-only on [July 1st]."),
        ("Dmitri", "We have moved [2,400] pages to [Quillbase] so far."),
        ("Nadia", "Finance still has about [300] pages with spreadsheets inside."),
        ("Priya", "Those need a manual check. [Nadia], can your team own that?"),
        ("Nadia", "Yes, but we need two extra weeks."),
        ("Dmitri", "Search in [Quillbase] is already [40] percent faster than the wiki."),
        ("Priya", "Then we keep the date, and finance moves on [July 15th]."),
        ("Dmitri", "I'll send a reminder to every team on [Monday]."),
    )),
    Call("call-8", "Fourth quarter forecast", 16, (
        ("Mateo", "Let's go through the forecast for the fourth quarter."),
        ("Priya", "Revenue is forecast at [2.4 million] dollars, up [9] percent."),
        ("Tobias", "[Lumora] subscriptions grew the most, with [5,600] new accounts."),
        ("Anika", "Churn is still high among small customers, around [7] percent."),
        ("Mateo", "What would bring churn down?"),
        ("Priya", "An annual plan with [two] months free. [Altamira Foods] asked for that."),
        ("Tobias", "Hosting costs rise in [January], by about [11,000] dollars a month."),
        ("Mateo", "Then let's review the hosting contract with [Dmitri] next week."),
        ("Anika", "I'll prepare the numbers by [Tuesday]."),
    )),
)

_TERM = re.compile(r"\[([^\]]+)\]")


def plain(text: str) -> str:
    """The line as spoken and written, without the term brackets."""
    return _TERM.sub(r"\1", text)


def terms(text: str) -> list[str]:
    """The proper names and numbers a line contains, in order."""
    return _TERM.findall(text)


def _version(call: Call) -> str:
    spec = repr((CONTENT_VERSION, call, [PEOPLE[who] for who, _ in call.lines]))
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def _speech(call: Call, work: Path) -> np.ndarray:
    """The lines laid end to end, 0.3-0.9 s apart, with 0.5 s of silence at each end."""
    clips = synthesize_all([(plain(text), PEOPLE[who]) for who, text in call.lines], work)
    rng = random.Random(call.name)
    pad = np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.int16)
    parts = [pad]
    for who, text in call.lines:
        parts += [clips[(plain(text), PEOPLE[who])],
                  np.zeros(int(rng.uniform(0.3, 0.9) * SAMPLE_RATE), dtype=np.int16)]
    return np.concatenate(parts + [pad])


def _noise_rms(seed: int, seconds: float, work: Path) -> float:
    """RMS (int16 scale) of ffmpeg's pink noise at amplitude 1, to set the mix level."""
    probe = work / "noise.wav"
    _ffmpeg("-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude=1:seed={seed}:"
            f"sample_rate={SAMPLE_RATE}:duration={seconds:.2f}", "-ac", "1",
            "-c:a", "pcm_s16le", str(probe))
    return float(np.sqrt(np.mean(read_wav(probe).astype(np.float64) ** 2)))


def add_room_noise(clean: Path, out: Path, snr_db: float, seed: int, work: Path) -> None:
    """Mix pink noise at `snr_db` below the speech's level (measured over its voiced samples)
    and a short echo, as a small meeting room with a laptop microphone sounds."""
    samples = read_wav(clean).astype(np.float64)
    voiced = samples[np.abs(samples) > 200]
    speech_rms = float(np.sqrt(np.mean(voiced ** 2)))
    seconds = len(samples) / SAMPLE_RATE
    gain = speech_rms / 10 ** (snr_db / 20) / _noise_rms(seed, seconds, work)
    _ffmpeg("-i", str(clean), "-f", "lavfi", "-i",
            f"anoisesrc=color=pink:amplitude=1:seed={seed}:sample_rate={SAMPLE_RATE}:"
            f"duration={seconds:.2f}",
            "-filter_complex",
            f"[0:a]aecho=1.0:0.9:35|70:0.25|0.12[room];[1:a]volume={gain:.6f}[noise];"
            "[room][noise]amix=inputs=2:duration=first:normalize=0[out]",
            "-map", "[out]", "-ac", "1", "-c:a", "pcm_s16le", str(out))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def reference(call: Call) -> dict:
    """What the call says: its title, reference text, terms and speakers."""
    return {"title": call.title, "version": _version(call),
            "text": " ".join(plain(t) for _, t in call.lines),
            "terms": [term for _, t in call.lines for term in terms(t)],
            "speakers": sorted({who for who, _ in call.lines})}


def build(call: Call, out_dir: Path) -> Path:
    """OUT/NAME.wav (22.05 kHz, noisy) and OUT/NAME.json (reference), reused when current."""
    wav, ref = out_dir / f"{call.name}.wav", out_dir / f"{call.name}.json"
    if wav.is_file() and ref.is_file() and json.loads(ref.read_text())["version"] == _version(call):
        return wav
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.wav"
        write_wav(clean, _speech(call, Path(tmp)))
        seed = int(hashlib.sha256(call.name.encode()).hexdigest()[:6], 16)
        add_room_noise(clean, wav, call.snr_db, seed, Path(tmp))
    ref.write_text(json.dumps(reference(call), indent=1) + "\n")
    return wav


def build_all(out_dir: Path) -> list[Path]:
    return [build(call, out_dir) for call in CALLS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    for wav in build_all(parser.parse_args().out):
        print(wav)


if __name__ == "__main__":
    main()
