"""The CLI for scripts: `ingest --json`, one line per file off a terminal, `-o -`, exit codes,
and filters that match nothing failing in words with near matches (issue #20, item 5).

The CLI runs in-process (ui.cli.main); pytest's captured stdout is not a terminal, as in a
nightly job's log. The recordings are short transcripts: no speech model is needed.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from clipcite.ui.cli import build_parser, main

COVID_4 = """WEBVTT

00:00:00.000 --> 00:00:05.000
Maria Lopez: We received four hundred petitions about the covid opening hours.

00:00:05.500 --> 00:00:11.000
Tom Becker: The council votes on the petitions next Tuesday at the town hall.
"""

BOARD = """WEBVTT

00:00:00.000 --> 00:00:06.000
Ada Stone: The board approved the budget for the new petitions office.
"""

# Long, with spaces: a table folds it across lines on a narrow terminal.
BROKEN = "a very long recording name that a narrow table would fold across two lines.vtt"


def run(*args: str) -> tuple[int, str, str]:
    """main(args) -> (exit status, stdout, stderr); argparse's exits give their status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(args))
        except SystemExit as e:
            status = int(e.code or 0)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = tmp_path_factory.mktemp("scripts") / "library"
    lib.mkdir()
    (lib / "covid_4.vtt").write_text(COVID_4, encoding="utf-8")
    (lib / BROKEN).write_bytes(b"\x00\x01 not a transcript")
    (lib.parent / "board").mkdir()
    (lib.parent / "board" / "board_minutes.vtt").write_text(BOARD, encoding="utf-8")
    return lib


@pytest.fixture(scope="module")
def ingested(library: Path) -> dict:
    """The library ingested with --json (and the board's minutes, restricted to `board`)."""
    index = library.parent / "index"
    status, out, err = run("ingest", str(library), str(library / "missing.vtt"), "--json",
                           "--index", str(index))
    board = run("ingest", str(library.parent / "board"), "--groups", "board", "--json",
                "--index", str(index))
    assert board[0] == 0, board
    return {"index": str(index), "status": status, "out": out, "err": err}


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_ingest_json_prints_one_object_per_file_then_the_totals(ingested, library: Path):
    assert ingested["status"] == 1  # one file failed, one path is missing
    *files, totals = _lines(ingested["out"])  # every stdout line is JSON
    by_name = {Path(f["path"]).name: f for f in files}
    assert set(by_name) == {"covid_4.vtt", BROKEN, "missing.vtt"}
    for f in files:
        assert f["type"] == "file"
        assert {"path", "status", "reason", "segments", "seconds", "write_seconds"} <= set(f)
    good = by_name["covid_4.vtt"]
    assert good["status"] == "indexed" and good["segments"]["transcript"] == 2
    assert good["seconds"] > 0 and good["path"] == str(library / "covid_4.vtt")
    assert 0 < good["write_seconds"] <= good["seconds"]  # the single writer's share
    assert by_name[BROKEN]["status"] == "failed" and "binary" in by_name[BROKEN]["reason"]
    assert by_name["missing.vtt"]["reason"] == "file or folder not found"
    assert totals["type"] == "totals" and totals["files"] == 3
    assert (totals["indexed"], totals["failed"], totals["unchanged"]) == (1, 2, 0)
    assert totals["segments"]["transcript"] == 2
    assert "Ingestion summary" not in ingested["out"] + ingested["err"]
    assert "CLIP frame search is off" in ingested["err"]  # notes go to stderr


def test_ingest_exit_status_says_whether_every_file_is_indexed(ingested, library: Path):
    index = ("--index", ingested["index"])
    status, out, _ = run("ingest", str(library), "--json", *index)
    *files, totals = _lines(out)
    assert {f["status"] for f in files} == {"unchanged"}
    # The broken file is left alone (unchanged since it failed), still not indexed: exit 1.
    assert status == 1 and totals["failed_before"] == 1
    assert run("ingest", str(library / "covid_4.vtt"), "--json", *index)[0] == 0


def test_the_summary_is_one_line_per_file_off_a_terminal(ingested, library: Path,
                                                         monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a table this narrow folds every long cell
    status, out, _ = run("ingest", str(library), "--again", "--index", ingested["index"])
    assert status == 1
    lines = out.splitlines()
    assert "Ingestion summary" in lines
    [broken] = [line for line in lines if BROKEN in line]
    path, state, *_, reason = broken.split("\t")
    assert path == str(library / BROKEN) and state == "failed"
    assert reason == "binary content (NUL byte at offset 0), not a text transcript"
    [good] = [line for line in lines if line.startswith(str(library / "covid_4.vtt"))]
    assert good.split("\t")[1] == "indexed"
    assert any(line.startswith("1 indexed, 1 failed in ") for line in lines)

    status, out, _ = run("status", "--index", ingested["index"])
    assert status == 0
    [row] = [line for line in out.splitlines() if line.startswith("A very long")]
    assert row.split("\t")[-1].startswith("binary content (NUL byte at offset 0)")


def test_a_file_name_with_a_newline_stays_on_its_line(tmp_path: Path, monkeypatch):
    odd = tmp_path / "two\nlines.vtt"
    odd.write_bytes(b"\x00")
    status, out, _ = run("ingest", str(odd), "--index", str(tmp_path / "index"))
    assert status == 1
    [line] = [line for line in out.splitlines() if "lines.vtt" in line]
    assert line.startswith(str(tmp_path / "two\\x0alines.vtt") + "\tfailed\t")


def test_dash_o_is_standard_output_for_every_command_that_writes_a_file(ingested, tmp_path,
                                                                       monkeypatch):
    writers = set()
    for command, sub in _subcommands().items():
        if any("-o" in a.option_strings or "--output" in a.option_strings for a in sub._actions):
            writers.add(command)
    assert writers == {"export"}  # a new one needs its `-o -` case here
    monkeypatch.chdir(tmp_path)
    status, out, _ = run("export", "covid_4", "--format", "vtt", "-o", "-",
                         "--index", ingested["index"])
    assert status == 0 and out.startswith("WEBVTT") and "petitions" in out
    assert not (tmp_path / "-").exists()
    status, out, _ = run("export", "covid_4", "--format", "txt", "-o", "covid.txt",
                         "--index", ingested["index"])
    assert status == 0 and "petitions" in (tmp_path / "covid.txt").read_text(encoding="utf-8")


def _subcommands() -> dict:
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    return dict(sub.choices)


def test_exit_codes_are_documented_and_usage_errors_exit_2():
    for args in (["--help"], ["ingest", "--help"]):
        status, out, _ = run(*args)
        assert status == 0 and "exit status:" in out
        assert all(f"\n  {code} " in out for code in (0, 1, 2, 130))
    assert run("search", "x", "--k", "many")[0] == 2  # argparse
    assert run("no-such-command")[0] == 2
    assert run("ingest")[0] == 2
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "| 1 | `ingest`: some files are not indexed" in readme
    assert "`clipcite ingest --json`" in readme


def _search(index: str, *args: str) -> tuple[int, list[dict] | None, str]:
    status, out, err = run("search", "petitions", "--json", "--index", index, *args)
    return status, (json.loads(out)["results"] if status == 0 else None), err


def test_a_recording_title_or_speaker_matching_nothing_is_an_error_with_near_matches(ingested):
    index = ingested["index"]
    status, found, _ = _search(index, "--recording", "covid_4")  # the file's stem
    assert status == 0 and found and {m["title"] for m in found} == {"Covid 4"}
    status, found, _ = _search(index, "--title", "covid_4")  # a file name, titled
    assert status == 0 and found and {m["title"] for m in found} == {"Covid 4"}
    status, found, _ = _search(index, "--speaker", "maria lopez")
    assert status == 0 and found and {m["speaker"] for m in found} == {"Maria Lopez"}

    for args, said in [
        (("--recording", "covid_5"), 'no indexed recording "covid_5"'),
        (("--title", "covd"), 'no recording you can search has "covd" in its title'),
        (("--speaker", "Maria Lopes"), 'no speaker "Maria Lopes" in the 2 recordings searched'),
    ]:
        status, found, err = _search(index, *args)
        assert status == 2 and found is None, args
        [line] = err.splitlines()  # one line, on stderr with --json (stdout stays empty)
        assert line.startswith("Error: " + said), line
        assert "did you mean" in line, line
    assert 'did you mean "covid_4"' in _search(index, "--recording", "covid_5")[2]
    assert 'did you mean "Maria Lopez"' in _search(index, "--speaker", "Maria Lopes")[2]
    # Together they leave nothing: said as much, not an empty result.
    status, _, err = _search(index, "--recording", "covid_4", "--title", "minutes")
    assert status == 2 and "no recording the other filters leave" in err
    # Without --json the error is on stdout, as the rest of the human output.
    status, out, _ = run("search", "petitions", "--recording", "covid_5", "--index", index)
    assert status == 2 and 'no indexed recording "covid_5"' in out


def test_near_matches_name_only_recordings_and_speakers_the_caller_may_see(ingested):
    index = ingested["index"]
    status, found, _ = _search(index, "--recording", "board_minutes", "--groups", "board")
    assert status == 0 and {m["title"] for m in found} == {"Board minutes"}
    for args in (("--recording", "board_minute"), ("--title", "Board minute"),
                 ("--speaker", "Ada Stone")):
        status, _, err = _search(index, *args, "--groups", "staff")
        assert status == 2 and "oard" not in err.replace(args[1], "") and "Ada" not in \
            err.replace(args[1], ""), err
