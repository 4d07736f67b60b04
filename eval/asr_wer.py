"""Speech recognition quality: word error, name/number recall and speed per model, decoding and
vocabulary hint, on recordings with reference transcripts. Run on demand; prints Markdown.

    .venv/bin/python eval/asr_wer.py                              # models x greedy/beam 5
    .venv/bin/python eval/asr_wer.py --beams 1 --hints none,slides,vocab-hotwords
    .venv/bin/python eval/asr_wer.py --detail --out /tmp/asr.json # + per recording, hypotheses

Recordings (split fixed in eval/asr_split.json, by recording): the real clips with references
in ../shared/media (sample.wav with sample.stm; jfk.flac, whose sentence is well known), the
generated slide videos and meeting of eval/fixtures.py (manifest text), and the noisy calls of
eval/noisy_meetings.py (3-4 espeak-ng voices, names, numbers, products, room noise).

* What is scored is what ingest indexes: the transcript segments' text (ingestion.segments
  drops runs too fast to be speech, such as a loop written into the last second).
* WER: word edits / reference words over a half, after Whisper's English text normaliser
  (so "$48,000" and "forty-eight thousand dollars" agree), alignment by edit distance.
* Name/number recall: the share of the reference's proper names and numbers whose every word
  is aligned to the same word in the hypothesis (bracketed in the calls; in the other texts,
  runs of capitalised words not starting a sentence, and numbers).
* RTF: transcription wall seconds / audio seconds (model load excluded); "CPU" is process CPU
  seconds / audio seconds, steadier than wall time when other jobs share the cores. The
  models take turns recording by recording, so they share any load alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from clipcite.ui.environment import set_defaults  # noqa: E402

set_defaults()  # before any model library loads, as the CLI does

from clipcite.ingestion.segments import segment_words  # noqa: E402

MEDIA = REPO.parent / "shared" / "media"
ARTIFACTS = REPO / "tests" / "artifacts"
SPLIT = REPO / "eval" / "asr_split.json"
JFK_TEXT = ("And so, my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")
VIDEO = (".mp4", ".webm", ".mkv", ".mov")


@dataclass
class Clip:
    name: str
    path: Path
    text: str  # the reference transcript
    terms: list[str]  # proper names and numbers, in the order spoken
    title: str  # as ingestion titles it (from the file name)
    slides: list = field(default_factory=list)  # OCR'd slide segments (videos)


# -- references --------------------------------------------------------------------------------
_SMALL = {"I", "I'm", "I'll", "I've", "I'd", "OK", "Okay"}


def auto_terms(text: str) -> list[str]:
    """Proper names and numbers of a text with no marked terms: runs of words that hold a digit
    or are capitalised without starting a sentence ("Diane", "New Jersey", "48,000")."""
    found = []
    for sentence in re.split(r"(?<=[.?!])\s+", text):
        run: list[str] = []
        for i, raw in enumerate(sentence.split()):
            word = raw.strip(".,?!:;\"()")
            named = i > 0 and word[:1].isupper() and word not in _SMALL
            if word and (named or any(c.isdigit() for c in word)):
                run.append(word)
                if raw[-1:] in ",;:.?!":  # a comma ends a name
                    found.append(" ".join(run))
                    run = []
            elif run:
                found.append(" ".join(run))
                run = []
        if run:
            found.append(" ".join(run))
    return found


def real_clips(media: Path) -> list[Clip]:
    from clipcite.ingestion.files import title_from_path

    stm = [line.split(maxsplit=5) for line in (media / "sample.stm").read_text().splitlines()]
    sample = " ".join(parts[5] for parts in sorted(stm, key=lambda p: float(p[3])))
    return [Clip("sample.wav", media / "sample.wav", sample, auto_terms(sample),
                 title_from_path(media / "sample.wav")),
            Clip("jfk.flac", media / "jfk.flac", JFK_TEXT, auto_terms(JFK_TEXT),
                 title_from_path(media / "jfk.flac"))]


def fixture_clips(out: Path) -> list[Clip]:
    from eval.fixtures import generate_all
    from clipcite.ingestion.files import title_from_path

    manifest = generate_all(out)
    clips = []
    for name, entry in sorted(manifest["files"].items()):
        said = sorted((i for i in entry["items"] if i["kind"] == "speech"),
                      key=lambda i: i["start"])
        text = " ".join(i["text"] for i in said)
        clips.append(Clip(name, out / name, text, auto_terms(text), title_from_path(out / name)))
    return clips


def call_clips(out: Path) -> list[Clip]:
    from eval.noisy_meetings import build_all
    from clipcite.ingestion.files import title_from_path

    clips = []
    for wav in build_all(out):
        ref = json.loads(wav.with_suffix(".json").read_text())
        clips.append(Clip(wav.name, wav, ref["text"], ref["terms"], title_from_path(wav)))
    return clips


def archive_vocabulary() -> list[str]:
    """One archive's glossary and confirmed speaker names, given to every recording in it: the
    calls' products, customers and people, and the generated meeting's speakers. Most of it is
    never said in a given recording, as in a real archive."""
    from eval.fixtures import MARK, SARAH, TOM
    from eval.noisy_meetings import CONFIRMED_NAMES, GLOSSARY

    return [*GLOSSARY, *CONFIRMED_NAMES, SARAH.name, MARK.name, TOM.name]


def read_slides(clips: Sequence[Clip], cache_dir: Path) -> None:
    """OCR each video's slides with the ingest code, for the slide-word prompt."""
    from clipcite.ingestion.extract import ExtractOptions, Models, _look

    options = ExtractOptions(cache_dir=cache_dir)
    models = Models(options)
    for clip in clips:
        if clip.path.suffix in VIDEO:
            from clipcite.ingestion.media import probe

            duration = probe(clip.path).duration
            visual, _ = _look(clip.path, duration, options, models, lambda *a: None)
            clip.slides = visual.slide_segments()


# -- scoring -----------------------------------------------------------------------------------
_normaliser: Callable[[str], str] | None = None


def normalise(text: str) -> list[str]:
    global _normaliser
    if _normaliser is None:
        from whisper.normalizers import EnglishTextNormalizer

        _normaliser = EnglishTextNormalizer()
    return _normaliser(text).split()


def align(ref: list[str], hyp: list[str]) -> tuple[int, list[str | None]]:
    """Edit distance, and for each reference word the hypothesis word it is matched or
    substituted with (None: deleted)."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),
                             cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    paired: list[str | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            paired[i - 1] = hyp[j - 1]
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return cost[n][m], paired


def term_spans(ref: list[str], terms: Sequence[str]) -> list[tuple[int, int]]:
    """Where each term lies in the normalised reference, scanning forward in spoken order.
    A term word matches a reference word that contains it ("48000" in "$48000")."""
    spans, at = [], 0
    for term in terms:
        words = normalise(term)
        for start in range(at, len(ref) - len(words) + 1):
            if all(w in ref[start + k] for k, w in enumerate(words)):
                spans.append((start, start + len(words)))
                at = start + len(words)
                break
        else:
            raise ValueError(f"term {term!r} not found in the reference")
    return spans


@dataclass
class Score:
    words: int = 0
    edits: int = 0
    terms: int = 0
    heard: int = 0
    audio: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0
    missed: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name in ("words", "edits", "terms", "heard", "audio", "wall", "cpu"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.missed += other.missed


def score(clip: Clip, hypothesis: str) -> Score:
    ref, hyp = normalise(clip.text), normalise(hypothesis)
    edits, paired = align(ref, hyp)
    spans = term_spans(ref, clip.terms)
    heard = [all(paired[k] == ref[k] for k in range(a, b)) for a, b in spans]
    return Score(words=len(ref), edits=edits, terms=len(spans), heard=sum(heard),
                 missed=[t for t, ok in zip(clip.terms, heard) if not ok])


# -- hints -------------------------------------------------------------------------------------
Hint = Callable[[Clip, list[str]], tuple[str | None, str | None]]  # (initial prompt, hotwords)


def _slides_prompt(clip: Clip, limit: int = 200) -> str | None:
    """The prompt ingest gave until 2026-12-07 (dropped: it did not pay): the title and the
    words the slides show, only for a recording with slide words."""
    words: list[str] = []
    for seg in clip.slides:
        for w in re.findall(r"[A-Za-z][A-Za-z0-9'\-]{3,}", seg.text):
            if w.lower() not in {x.lower() for x in words}:
                words.append(w)
    if not words:
        return None
    return f"{clip.title.strip()}. {', '.join(words)}"[:limit]


def _slide_words(clip: Clip) -> list[str]:
    hint = _slides_prompt(clip)  # "Title. word, word, ...": the words the slides show
    return hint.split(". ", 1)[-1].split(", ") if hint else []


def _joined(words: Sequence[str]) -> str | None:
    from clipcite.ingestion.extract import _hotwords

    return _hotwords(words)  # as ingest writes them (comma-separated, length-capped)


HINTS: dict[str, Hint] = {
    "none": lambda clip, vocab: (None, None),
    # What ingest did until 2026-12-07: the title and slide words as the prompt.
    "slides": lambda clip, vocab: (_slides_prompt(clip), None),
    # + the archive vocabulary (glossary, confirmed names) as hotwords: in every 30 s window.
    "vocab-hotwords": lambda clip, vocab: (_slides_prompt(clip), _joined(vocab)),
    # The archive vocabulary as hotwords, and no prompt: what ingest does now.
    "hotwords": lambda clip, vocab: (None, _joined(vocab)),
    # The archive vocabulary and then the slide words as hotwords, no prompt.
    "slide-hotwords": lambda clip, vocab: (None, _joined([*vocab, *_slide_words(clip)])),
    # + the archive vocabulary in the prompt (the first 30 s window only).
    "vocab-prompt": lambda clip, vocab: (
        ". ".join(p for p in (_slides_prompt(clip), _joined(vocab)) if p), None),
    # + the title too, as a hotword (the title alone as the prompt once cost 15 s of speech).
    "title-vocab-hotwords": lambda clip, vocab: (_slides_prompt(clip),
                                                 _joined([clip.title, *vocab])),
}


# -- running -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    model: str
    beam: int
    hint: str

    @property
    def label(self) -> str:
        return f"{self.model} | {'greedy' if self.beam == 1 else f'beam {self.beam}'} | {self.hint}"


def transcribe(transcriber, audio, clip: Clip, config: Config, vocab: list[str],
               language: str | None) -> tuple[str, str | None, float, float]:
    prompt, hotwords = HINTS[config.hint](clip, vocab)
    wall, cpu = time.perf_counter(), time.process_time()
    heard = transcriber.transcribe(audio, language=language, initial_prompt=prompt,
                                   hotwords=hotwords)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    indexed = " ".join(seg.text for seg in segment_words(heard.words))
    return indexed, heard.language, wall, cpu


def run(clips: Sequence[Clip], configs: Sequence[Config], cache_dir: Path,
        vocab: list[str], log: Callable[[str], None]) -> dict[tuple[Config, str], dict]:
    """Every config on every clip, clip by clip so the configs share the machine's load."""
    from clipcite.ingestion.asr import AsrOptions, load_transcriber
    from clipcite.ingestion.media import SAMPLE_RATE, decode_audio

    transcribers = {}
    for c in configs:
        if (c.model, c.beam) not in transcribers:
            transcribers[(c.model, c.beam)] = load_transcriber(
                AsrOptions(model=c.model, beam_size=c.beam), cache_dir)
    results = {}
    for clip in clips:
        audio, _ = decode_audio(clip.path)
        seconds = len(audio) / SAMPLE_RATE
        for c in configs:
            language = "en" if c.model.endswith(".en") else None  # as the product sets it
            text, lang, wall, cpu = transcribe(transcribers[(c.model, c.beam)], audio, clip, c,
                                               vocab, language)
            s = score(clip, text)
            s.audio, s.wall, s.cpu = seconds, wall, cpu
            results[(c, clip.name)] = {"score": s, "text": text, "language": lang}
            log(f"{clip.name:28} {c.label:40} WER {s.edits / s.words:.3f} "
                f"terms {s.heard}/{s.terms} RTF {wall / seconds:.3f} lang {lang}")
    return results


def table(results: dict, configs: Sequence[Config], halves: dict[str, list[str]]) -> str:
    lines = ["| model | decoding | hint | half | recordings | words | WER | names/numbers heard "
             "| RTF | CPU s / audio s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c in configs:
        for half, names in halves.items():
            present = [n for n in names if (c, n) in results]
            total = Score()
            for name in present:
                total.add(results[(c, name)]["score"])
            if not total.words:
                continue
            lines.append(f"| {c.label} | {half} | {len(present)} | {total.words} | "
                         f"{total.edits / total.words:.3f} | {total.heard / total.terms:.3f} "
                         f"({total.heard}/{total.terms}) | {total.wall / total.audio:.3f} | "
                         f"{total.cpu / total.audio:.3f} |")
    return "\n".join(lines)


def detail(results: dict, configs: Sequence[Config], clips: Sequence[Clip]) -> str:
    lines = ["| recording (WER / names, numbers heard) | "
             + " | ".join(c.label.replace(" | ", ", ") for c in configs) + " |",
             "|---|" + "---|" * len(configs)]
    for clip in clips:
        cells = []
        for c in configs:
            r = results[(c, clip.name)]
            s = r["score"]
            lang = "" if r["language"] in (None, "en") else f" ({r['language']}!)"
            cells.append(f"{s.edits / s.words:.2f} / {s.heard}/{s.terms}{lang}")
        lines.append(f"| {clip.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny.en,base", help="comma-separated model names")
    parser.add_argument("--beams", default="1,5", help="beam sizes (1: greedy)")
    parser.add_argument("--hints", default="slides", help=f"of: {', '.join(HINTS)}")
    parser.add_argument("--configs", help="instead of the grid: MODEL:BEAM:HINT,... "
                                          "(e.g. tiny.en:5:none,base:1:hotwords)")
    parser.add_argument("--half", choices=["tune", "check", "both"], default="both")
    parser.add_argument("--only", help="comma-separated recording names")
    parser.add_argument("--detail", action="store_true", help="also a row per recording")
    parser.add_argument("--out", type=Path, help="write hypotheses and scores as JSON")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("CLIPCITE_CACHE") or
                                     Path.home() / ".cache" / "clipcite"))
    args = parser.parse_args(argv)

    split = json.loads(SPLIT.read_text())
    halves = {h: split[h] for h in ("tune", "check") if args.half in (h, "both")}
    wanted = {n for names in halves.values() for n in names}
    if args.only:
        wanted &= set(args.only.split(","))
    clips = [c for c in (real_clips(MEDIA) + fixture_clips(ARTIFACTS / "generated")
                         + call_clips(ARTIFACTS / "asr-calls")) if c.name in wanted]
    read_slides(clips, args.cache_dir)
    configs = [Config(m, int(b), h) for h in args.hints.split(",")
               for m in args.models.split(",") for b in args.beams.split(",")]
    if args.configs:
        configs = [Config(m, int(b), h) for m, b, h in
                   (c.rsplit(":", 2) for c in args.configs.split(","))]
    unknown = {c.hint for c in configs} - set(HINTS)
    if unknown:
        parser.error(f"unknown hints: {', '.join(sorted(unknown))}")
    results = run(clips, configs, args.cache_dir, archive_vocabulary(),
                  lambda line: print(line, file=sys.stderr, flush=True))
    print(table(results, configs, halves))
    if args.detail:
        print()
        print(detail(results, configs, clips))
    if args.out:
        args.out.write_text(json.dumps(
            [{"recording": name, "config": c.label, "text": r["text"], "language": r["language"],
              "missed": r["score"].missed, **{k: getattr(r["score"], k) for k in
                                               ("words", "edits", "terms", "heard", "audio",
                                                "wall", "cpu")}}
             for (c, name), r in results.items()], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
