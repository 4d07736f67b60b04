"""Files that arrive through the page: uploads for the library and a clip or screenshot
attached to a chat message (searched by, never kept). File names are cleaned, sizes checked on
the server, and only files Gradio received as uploads are ever read or deleted."""

from __future__ import annotations

import html
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from clipcite.retrieval.schema import FRAMES, SLIDES
from clipcite.ui.web.errors import ASK_ADMIN, plain_error
from clipcite.ui.web.services import ExampleReader

log = logging.getLogger("clipcite.web")

MEDIA_SUFFIXES = (".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm",
                  ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".wma", ".wmv")
MB = 1024 * 1024  # as Gradio counts a "mb" in max_file_size
TOO_BIG_ADVICE = ("Make it smaller (for example, save only the sound, or the video at a lower "
                  "quality), or ask your administrator to raise the upload limit.")
# A file attached to a chat message is searched by, never added to the library.
ATTACH_TOO_BIG_ADVICE = ("Attach a shorter clip (a few seconds of speech is enough) or a smaller "
                         "picture, or ask your administrator to raise the upload limit.")
_VISUAL = (SLIDES, FRAMES)


def safe_filename(name: str) -> str:
    """A plain file name: no folders, no control or odd characters, a media suffix kept."""
    name = unicodedata.normalize("NFKC", Path(name.replace("\\", "/")).name)
    stem, suffix = os.path.splitext(name)
    stem = re.sub(r"[^\w\- .()]+", "_", stem).strip(" ._") or "recording"
    suffix = re.sub(r"[^\w.]+", "", suffix.lower())[:8]
    return f"{stem[:100]}{suffix}"


def too_big_message(name: str, size: int, limit_mb: float,
                    outcome: str = "it was not added", advice: str = TOO_BIG_ADVICE) -> str:
    return (f"“{name}” is {size / MB:.1f} MB, more than the {limit_mb:g} MB allowed, so "
            f"{outcome}. {advice}")


# -- a clip or screenshot attached to a chat message -------------------------------------------
class AttachmentError(ValueError):
    """An attachment that cannot be searched by, in one sentence naming the file."""


def split_message(message: Any) -> tuple[str, list[Path]]:
    """The typed text and the attached files of the chat box (a MultimodalTextbox value)."""
    if isinstance(message, dict):
        files = [Path(f if isinstance(f, str) else f.get("path", "")) for f in
                 message.get("files") or []]
        return (message.get("text") or "").strip(), [f for f in files if str(f) not in ("", ".")]
    return (message or "").strip(), []


def is_image_name(name: str) -> bool:
    from clipcite.ingestion.example import IMAGE_SUFFIXES  # imported when needed: it loads scipy

    return name.lower().endswith(IMAGE_SUFFIXES)


def is_upload(path: Path) -> bool:
    """Whether a file the page names is one Gradio received as an upload. The page names files
    by their path on the server, and Gradio checks that they are uploads only when it runs the
    server itself (launch()), not when mounted in our FastAPI app: without this, a hand-made
    request could have any file on the server read out, or deleted."""
    from gradio.utils import get_upload_folder

    try:
        root, real = Path(get_upload_folder()).resolve(), path.resolve()
    except OSError:
        return False
    return real != root and real.is_relative_to(root)


def check_attachment(path: Path, limit_mb: float) -> None:
    """Refuses, in a sentence, a file that is not a clip or picture, not an upload, gone, or
    too big (Gradio checks the size too, in the browser and on upload: never trust it alone)."""
    name = path.name
    if not (name.lower().endswith(MEDIA_SUFFIXES) or is_image_name(name)):
        raise AttachmentError(
            f"“{name}” is not an audio clip or a picture, so I could not search by it. Attach "
            "a short recording (such as .m4a, .mp3 or .wav) or a screenshot (.png or .jpg).")
    if not (is_upload(path) and path.is_file()):
        raise AttachmentError(f"“{name}” did not arrive. Please attach it again.")
    size = path.stat().st_size
    if size > limit_mb * MB:
        raise AttachmentError(too_big_message(name, size, limit_mb, "I could not search by it",
                                              ATTACH_TOO_BIG_ADVICE))


def discard_upload(path: Path) -> None:
    """Removes an attachment's uploaded file, and its folder when that is left empty (Gradio
    keeps each upload in a folder named after its contents): an example is read, never kept.
    A file outside Gradio's uploads is never touched."""
    if not is_upload(path):
        return
    try:
        path.unlink(missing_ok=True)
        if is_upload(path.parent):  # never Gradio's upload folder itself
            path.parent.rmdir()
    except OSError:
        log.warning("could not remove the upload %s", path, exc_info=True)


def read_attachment(reader: ExampleReader, path: Path, limit_mb: float, question: str) -> Any:
    """The Example of an attached file, or AttachmentError; the upload is removed either way."""
    from clipcite.ingestion.media import MediaError

    name = path.name
    try:
        check_attachment(path, limit_mb)
        example = reader.read(path)
    except MediaError as e:
        raise AttachmentError(f"I could not use “{name}”: {plain_error(e)}. Attach a clip in "
                              "which someone speaks, or a screenshot of a slide.") from None
    except AttachmentError:
        raise
    except Exception as e:  # noqa: BLE001 - a sentence, never a traceback
        log.exception("reading the attachment %s failed", name)
        raise AttachmentError(f"I could not read “{name}”: {plain_error(e)}. Please try again; "
                              f"{ASK_ADMIN}") from None
    finally:
        discard_upload(path)
    if not example.text and example.image is None and not question:
        raise AttachmentError(  # a picture without readable text, and CLIP is off
            f"I could not read any text in “{name}”, so there is nothing to look for on the "
            "slides. Attach a sharper screenshot, or type what you are looking for.")
    return example


def attachment_status(name: str) -> str:
    """What the answer bubble says while the attachment is read."""
    return (f"Reading the text in “{name}”…" if is_image_name(name) else
            f"Listening to “{name}”…")


def user_bubble(text: str, names: list[str]) -> str:
    """The person's message as shown in the chat: the attached file's name, then the text."""
    attached = "".join(f"<em>Attached: {html.escape(n)}</em>\n\n" for n in names)
    return (attached + html.escape(text)).strip()


def _quote(text: str, limit: int) -> str:
    """Text on one line, cut at a word before `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def example_reply(name: str, example: Any, moments: list[Any]) -> Any:
    """A file sent without a question: what was heard or read in it, and the moments it
    matches, best first, each a citation (no language model needed)."""
    from clipcite.assistant.agent import Reply
    from clipcite.assistant.evidence import Citation, label

    words = _quote(example.text, 200)
    heard = (f"On “{name}” I read: “{words}”. " if example.kind == "image" else
             f"In “{name}” I heard: “{words}”. ") if words else ""
    if not moments:
        return Reply(f"{heard}Nothing in the recordings you can see matches it.", found=[])
    lines = []
    for n, m in enumerate(moments, 1):
        who = f" ({m.speaker})" if m.speaker else ""
        where = " [on screen]" if m.modality in _VISUAL else ""
        lines.append(f"[{n}] {label(m)}{who}{where}: “{_quote(m.text, 160)}”")
    citations = [Citation(n, m.media_id, m.path, m.title, m.start, m.end, m.text, m.speaker)
                 for n, m in enumerate(moments, 1)]
    return Reply(f"{heard}It matches these moments, best first (click one to play it):\n"
                 + "\n".join(lines), citations, intent="find", found=moments)


def unique_path(folder: Path, name: str) -> Path:
    path = folder / name
    stem, suffix = os.path.splitext(name)
    n = 2
    while path.exists():
        path = folder / f"{stem} ({n}){suffix}"
        n += 1
    return path
