"""HTML for the page: answers with citation chips, the recording page (player, slide timeline,
transcript, speakers, matches), the library table's words. Everything from a recording or a
person is escaped here."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from clipcite.assistant.evidence import clock
from clipcite.retrieval.schema import FRAMES, SLIDES
from clipcite.ui.media_server import is_transcript, is_video
from clipcite.ui.web.services import RecordingView


# -- rendering ---------------------------------------------------------------------------------
_VISUAL = (SLIDES, FRAMES)


def thumb_time(c: Any, found: list[Any]) -> float | None:
    """When a citation's moment was found on screen (slides or frames), the time of the picture
    to show beside its text: the cited start if the slide was up then, else the slide's start."""
    for m in found:
        if m.media_id != c.media_id or abs(m.start - c.start) > 0.01 or abs(m.end - c.end) > 0.01:
            continue
        spans = [(m.start, m.end)] if m.modality in _VISUAL else []
        spans += [(float(e["start"]), float(e["end"])) for e in m.evidence
                  if e.get("modality") in _VISUAL]
        if spans:
            inside = any(s <= c.start <= e for s, e in spans)
            return c.start if inside else min(s for s, _ in spans)
    return None


def chip_html(c: Any, thumb: float | None = None) -> str:
    """A citation chip. Gradio's chat sanitiser drops data-* attributes but keeps a button's
    name, value and title: name is the media id, value "start|end|kind|thumbnail time" (empty
    when the moment was not on screen), title the cited text."""
    kind = "text" if is_transcript(c.path) else "video" if is_video(c.path) else "audio"
    shot = f"{thumb:.1f}" if thumb is not None and kind == "video" else ""
    attrs = {"class": "cc-chip", "name": c.media_id,
             "value": f"{c.start:.2f}|{c.end:.2f}|{kind}|{shot}",
             "title": " ".join(c.text.split())[:600]}
    attr = " ".join(f'{k}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items())
    return f"<button {attr}>[{c.n}] {html.escape(c.title)} · {clock(c.start)}</button>"


CLOSEST = 3  # moments offered under an answer that found nothing


def answer_html(reply: Any, note: str = "") -> str:
    """The answer with its citations as chips; an answer that cites nothing offers the closest
    moments the search found as chips too, so that they can be played and judged."""
    from clipcite.assistant.evidence import Citation

    body = html.escape(reply.answer.strip() or "I have no answer to that.")
    if note:
        body += f"\n\n<em>{html.escape(note)}</em>"
    if not reply.citations:
        closest = [Citation(n, m.media_id, m.path, m.title, m.start, m.end, m.text, m.speaker)
                   for n, m in enumerate(reply.found[:CLOSEST], 1)]
        if not closest:
            return body
        chips = " ".join(chip_html(c, thumb_time(c, reply.found)) for c in closest)
        return (f'{body}\n\n<div class="cc-chips cc-closest"><em>The closest moments, to play '
                f'and judge:</em> {chips}</div>')
    chips = " ".join(chip_html(c, thumb_time(c, reply.found)) for c in reply.citations)
    return f'{body}\n\n<div class="cc-chips">{chips}</div>'


# -- the recording page ------------------------------------------------------------------------
NOT_AVAILABLE = ("This recording is not available. It may have been removed, or you may not "
                 "have access to it. Choose another one from the list.")
DOWNLOADS = (("srt", "Subtitles (.srt)"), ("vtt", "Captions (.vtt)"), ("txt", "Text (.txt)"),
             ("rttm", "Who spoke when (.rttm)"))
_WHERE = {SLIDES: "on screen", FRAMES: "in the picture"}


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slide_marks(view: RecordingView) -> list[tuple[float, str]]:
    """One mark per slide on screen: its start and its text (slide text is stored per line)."""
    marks: dict[float, list[str]] = {}
    for m in view.slides:
        marks.setdefault(round(m.start, 1), []).append(" ".join(m.text.split()))
    return [(t, " / ".join(texts)[:300]) for t, texts in sorted(marks.items())]


def timeline_html(view: RecordingView) -> str:
    """Slide thumbnails placed along the recording's length; a click plays from there."""
    rec = view.rec
    marks = _slide_marks(view) if is_video(rec.path) else []
    if not marks:
        return ""
    length = max(rec.duration or 0.0, marks[-1][0] + 1.0)
    thumbs = "".join(
        f'<button class="cc-seek cc-slide" data-start="{t:.2f}" '
        f'title="{_e(clock(t))} · {_e(text)}"'
        f' style="left:{min(100.0, 100.0 * t / length):.2f}%">'
        f'<img src="thumb/{_e(rec.media_id)}?t={t:.1f}" alt="The screen at {_e(clock(t))}" '
        f'loading="lazy"></button>' for t, text in marks)
    return (f'<div class="cc-timeline-label">Slides along the recording (click one to play from '
            f'there)</div><div id="cc-rec-timeline" class="cc-timeline" data-length="{length:.2f}">'
            f'<div id="cc-rec-playhead"></div>{thumbs}</div>')


def player_page_html(view: RecordingView | None, start: float = 0.0) -> str:
    """The recording page's player (with captions), slide timeline and downloads."""
    if view is None:
        return f"<div id='cc-rec-box' class='cc-missing'>{_e(NOT_AVAILABLE)}</div>"
    rec, media = view.rec, _e(view.rec.media_id)
    when = f" · recorded {fmt_date(rec.recorded_at)}" if rec.recorded_at else ""
    length = f" · {clock(rec.duration)} long" if rec.duration else ""
    links = " ".join(f'<a class="cc-download" href="export/{media}.{fmt}" download>{label}</a>'
                     for fmt, label in DOWNLOADS)
    if is_transcript(rec.path):  # nothing to play: say so, instead of an empty player
        shown = (f"<div id='cc-rec-note' class='cc-note'>This recording is a transcript only "
                 f"(imported from “{_e(Path(rec.path).name)}”), so there is no sound or "
                 "picture "
                 "to play. Its lines and times are below; a citation points at a line.</div>")
    else:
        kind = "cc-video" if is_video(rec.path) else "cc-audio"
        at = f"#t={start:.2f}" if start > 0 else ""
        shown = (f"<video id='cc-rec-player' class='{kind}' controls preload='metadata' "
                 f"playsinline src='media/{media}{at}'><track kind='captions' default "
                 f"label='Transcript' src='captions/{media}.vtt'></video><div class='cc-caption' "
                 f"aria-live='polite'></div>{timeline_html(view)}")
    return (f"<div id='cc-rec-box' data-media='{media}' data-start='{start:.2f}'>"
            f"<div id='cc-rec-title'>{_e(rec.title)}{_e(length)}{_e(when)}</div>{shown}"
            f"<div class='cc-downloads'>Download the transcript: {links}</div></div>")


def transcript_html(view: RecordingView | None) -> str:
    """Every line with its speaker and time; a click (or Enter) plays from that line."""
    if view is None:
        return ""
    if not view.lines:
        return ("<div id='cc-rec-lines' class='cc-empty'>No speech was found in this "
                "recording.</div>")
    items = "".join(
        f'<li class="cc-line" role="button" tabindex="0" data-start="{m.start:.2f}" '
        f'data-end="{m.end:.2f}"><span class="cc-line-time">{clock(m.start)}</span>'
        f'<span class="cc-line-who">{_e(m.speaker or "")}</span>'
        f'<span class="cc-line-text">{_e(" ".join(m.text.split()))}</span></li>'
        for m in view.lines)
    return (f"<div class='cc-lines-label'>Transcript ({len(view.lines)} lines): click a line to "
            f"play from there</div><ol id='cc-rec-lines'>{items}</ol>")


def speakers_html(view: RecordingView | None) -> str:
    if view is None:
        return ""
    if not view.speakers:
        return ("<div id='cc-rec-speakers'>No speakers were told apart in this recording "
                "(re-ingest it from the Library to find them).</div>")
    rows = []
    for sp in view.speakers:
        note = " — suggested from their voice: confirm it or give the right name" \
            if sp.status == "suggested" else ""
        rows.append(f"<li><b>{_e(sp.shown)}</b> · {clock(sp.seconds)} of speech{_e(note)}</li>")
    return f"<ul id='cc-rec-speakers'>{''.join(rows)}</ul>"


def speaker_choices(view: RecordingView | None) -> list[tuple[str, str]]:
    """(shown, label): the label is stable while names change."""
    if view is None:
        return []
    return [(f"{sp.shown} (suggested)" if sp.status == "suggested" else sp.shown, sp.label)
            for sp in view.speakers]


BEST_FIRST, IN_TIME_ORDER = "Best match first", "In time order"


def found_html(moments: list[Any], query: str, order: str = BEST_FIRST) -> str:
    """Moments found within the recording, best match first (or in time order), each with how
    well it matched next to the best one; a click plays from there."""
    if not moments:
        return (f"<div id='cc-rec-found' class='cc-empty'>Nothing in this recording matches "
                f"“{_e(query)}”. Try other words.</div>")
    best = max(m.score for m in moments) or 1.0
    shown = sorted(moments, key=lambda m: m.start) if order == IN_TIME_ORDER else moments
    items = []
    for m in shown:
        where = _WHERE.get(m.modality) or (f"said by {m.speaker}" if m.speaker else "said")
        match = max(0, min(100, round(100 * m.score / best)))
        items.append(f'<li><button class="cc-seek cc-found" data-media="{_e(m.media_id)}" '
                     f'data-start="{m.start:.2f}">{clock(m.start)} · {_e(where)}</button> '
                     f'<meter class="cc-match" min="0" max="100" value="{match}" '
                     f'title="match {match}% of the best"></meter> '
                     f'<span>{_e(" ".join(m.text.split())[:300])}</span></li>')
    return f"<ol id='cc-rec-found'>{''.join(items)}</ol>"


def parse_start(text: str | None) -> float:
    """A start time from a link (?t=SECONDS); anything else starts at the beginning."""
    try:
        t = float(text or 0)
    except ValueError:
        return 0.0
    return t if 0 <= t < 1e7 else 0.0



def fmt_date(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts)) if ts else "-"


def status_words(rec: Any) -> tuple[str, str]:
    if rec.status == "failed":
        problem = rec.error or "unknown problem"
        if rec.searchable:
            return ("searchable (last update failed)",
                    f"The last update failed: {problem}. The earlier version is still used.")
        return "not searchable", f"Could not be read: {problem}. Try re-ingesting, or " \
                                 "check the file plays on your computer."
    return ("ready", "") if rec.searchable else (rec.status, "")


LIBRARY_COLUMNS = ["Title", "Length", "Date", "Status", "Contents", "Who can see it", "Problem"]
# Readable at 1280 px: no header wraps letter by letter, the problem has room to be read.
LIBRARY_WIDTHS = ["18%", "7%", "9%", "12%", "16%", "11%", "27%"]


def contents_words(counts: dict, frames_on: bool) -> str:
    """What was indexed, in words: "42 spoken lines, 3 slide texts, frames off"."""
    def n(count: int, one: str) -> str:
        return f"{count} {one}" + ("" if count == 1 else "s")

    frames = n(counts.get("frames", 0), "video frame") if frames_on else "video frames off"
    return ", ".join([n(counts.get("transcript", 0), "spoken line"),
                      n(counts.get("slides", 0), "slide text"), frames])


# -- the library -------------------------------------------------------------------------------
NO_UPLOAD_RIGHT = ("Your account may search and play recordings but not add them. Ask an "
                   "editor of your group or your administrator to add it.")
NO_CHANGE_RIGHT = ("Your account may not change this recording: re-reading, renaming its "
                   "speakers and deleting it are for editors of all the groups that can see it, "
                   "and for administrators.")


def progress_box(p: Any) -> str:
    """The Library's progress bar and the person's own recent messages (a services.Progress;
    None before the page knows who is looking)."""
    recent = "".join(f"<li>{html.escape(m)}</li>" for m in (p.messages if p else ()))
    recent = f"<ul class='cc-messages'>{recent}</ul>" if recent else ""
    if p is None or not p.running:
        return f"<div id='cc-progress' class='cc-idle'>No files are being added.</div>{recent}"
    if not p.current:  # someone else's files: their names are not this person's to see
        return ("<div id='cc-progress' class='cc-busy'>Someone else's files are being added."
                f"</div>{recent}")
    of = f" (file {min(p.done + 1, p.total)} of {p.total})" if p.total else ""
    what = f"Adding “{html.escape(p.current)}” — {html.escape(p.stage)}"
    return (f"<div id='cc-progress' class='cc-busy'>{what}{of}<br>"
            f"<progress max='1' value='{p.fraction:.2f}' style='width:100%'></progress>"
            f"</div>{recent}")
