"""Slides and frames: keyframes, OCR'd slide segments, and CLIP with a random model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from clipcite.ingestion.batch import BatchOptions, run_batch
from clipcite.ingestion.extract import ExtractOptions
from clipcite.ingestion.media import sample_frames
from clipcite.ingestion.visual import boilerplate_lines
from clipcite.retrieval.clip import ClipEncoder, _prepare_torchvision
from clipcite.retrieval.encoders import load_text_encoder
from clipcite.retrieval.index import Index
from clipcite.retrieval.schema import FRAMES, SLIDES, TRANSCRIPT
from clipcite.retrieval.search import Searcher, search
from tests.conftest import ffmpeg

SLIDES_TEXT = [
    ("Welcome to onboarding", "Your first week at Northwind"),
    ("Badge office", "Room B-214, open 8:30 to 11:00"),
    ("Laptop pickup", "IT desk on floor 3, bring your badge"),
]
NARRATION = [
    "Welcome, everyone. This short video explains your first week.",
    "Your access card is made on the first morning, so go there before nine.",
    "Then collect your computer from the technology team.",
]
SLIDE_SECONDS = 8.0


def _slide(title: str, body: str, path: Path, footer: str) -> None:
    image = Image.new("RGB", (1280, 720), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    draw.text((80, 120), title, fill=(20, 20, 60), font=ImageFont.load_default(size=72))
    draw.text((80, 320), body, fill=(30, 30, 30), font=ImageFont.load_default(size=48))
    draw.text((80, 620), footer, fill=(90, 90, 90), font=ImageFont.load_default(size=36))
    image.save(path)


@pytest.fixture(scope="module")
def slide_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three slides of 8 s each, narrated by espeak-ng; the room number is only on screen.
    Every slide has the deck's footer with its page number, as real decks do."""
    d = tmp_path_factory.mktemp("slides")
    parts = []
    for i, ((title, body), line) in enumerate(zip(SLIDES_TEXT, NARRATION)):
        _slide(title, body, d / f"s{i}.png", f"Northwind Traders New Starter Guide {i + 1}/3")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(d / f"n{i}.wav"),
                        line], check=True)
        ffmpeg("-loop", "1", "-i", str(d / f"s{i}.png"), "-i", str(d / f"n{i}.wav"),
               "-af", f"apad=whole_dur={SLIDE_SECONDS}", "-t", str(SLIDE_SECONDS), "-r", "5",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100",
               str(d / f"p{i}.mp4"))
        parts.append(f"file '{d / f'p{i}.mp4'}'")
    (d / "list.txt").write_text("\n".join(parts))
    out = d / "onboarding.mp4"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(d / "list.txt"), "-c", "copy", str(out))
    return out


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small randomly initialised CLIP saved to a file: the real loading path, no download."""
    _prepare_torchvision()
    import open_clip

    d = tmp_path_factory.mktemp("clip")
    config = d / "clipcite-tiny.json"
    config.write_text(json.dumps({
        "embed_dim": 64,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2,
                     "layers": 2},
    }))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("clipcite-tiny")
    weights = d / "tiny.pt"
    torch.save(model.state_dict(), weights)
    return config, weights


@pytest.fixture(scope="module")
def indexed(slide_video: Path, tiny_clip, tmp_path_factory, extract_options: ExtractOptions):
    config, weights = tiny_clip
    options = ExtractOptions(**{**extract_options.__dict__, "clip_model": str(config),
                                "clip_weights": str(weights)})
    index = Index(tmp_path_factory.mktemp("index"))
    outcomes = run_batch([slide_video], index, BatchOptions(extract=options))
    assert outcomes[0].status == "indexed", outcomes[0].reason
    return index, index.catalog.all()[0]


def test_one_slide_segment_per_slide_with_its_interval(indexed):
    index, rec = indexed
    # A segment per line, led by the slide title; the footer on every slide is not one.
    lines = index.segments(SLIDES, [rec.gen])
    spans = sorted({(h.metadata["start"], h.metadata["end"]) for h in lines})
    assert len(spans) == 3
    for (start, end), (title, body), i in zip(spans, SLIDES_TEXT, range(3)):
        texts = [h.text for h in lines if (h.metadata["start"], h.metadata["end"]) == (start, end)]
        assert texts == [title, f"{title}: {body}"]
        assert abs(start - i * SLIDE_SECONDS) <= 2.1
        assert abs(end - (i + 1) * SLIDE_SECONDS) <= 2.1


def test_footers_and_headers_repeated_across_a_deck_are_not_slide_text():
    deck = [f"Topic {t}\nPoint about {t}\nACME Security Training {i}/4\nConfidential"
            for i, t in enumerate(["phishing", "passwords", "devices", "quiz"], 1)]
    repeated = boilerplate_lines(deck)
    assert repeated == {"acme security training #/#", "confidential"}
    assert boilerplate_lines(deck[:2]) == set()  # two slides: too few to tell a footer
    # A line on two slides of six is content.
    deck += [f"Recap of {t}\nPoint about phishing" for t in ("week one", "week two")]
    assert boilerplate_lines(deck) == {"acme security training #/#", "confidential"}


def test_transcript_and_slides_both_indexed(indexed):
    index, rec = indexed
    text = " ".join(h.text for h in index.segments(TRANSCRIPT, [rec.gen])).lower()
    assert "first week" in text and "computer" in text
    assert rec.models["ocr"].startswith("tesseract")


def test_slide_only_fact_is_found(indexed):
    index, _ = indexed
    moments = search(Searcher(index, load_text_encoder()), "which room is the badge office in",
                     k=3)
    # Cited where it is said if narration covers it, else as the slide; the slide's text is in
    # the moment's evidence either way.
    slide = next(m for m in moments if any(e["modality"] == SLIDES and "B-214" in e["text"]
                                           for e in m.evidence))
    assert 6.0 <= slide.start <= 10.1


def test_frames_embedded_by_clip_and_found_by_image(indexed, tiny_clip, slide_video: Path):
    index, rec = indexed
    config, weights = tiny_clip
    frames = index.collection(FRAMES).get(where={"gen": rec.gen},
                                          include=["embeddings", "metadatas"])
    assert len(frames["ids"]) == 3 == rec.counts[FRAMES]
    assert np.asarray(frames["embeddings"]).shape == (3, 64)
    assert rec.models[FRAMES] == "open_clip:clipcite-tiny:tiny.pt"
    clip = ClipEncoder(str(config), str(weights))
    t, image = [(t, im) for t, im in sample_frames(slide_video) if t >= 16.0][0]
    hits = index.query(FRAMES, clip.embed_images([image])[0], 1, [rec.gen])
    assert hits[0].metadata["start"] == pytest.approx(16.0, abs=2.1)
    text_hits = Searcher(index, load_text_encoder(), clip).dense(FRAMES, "a badge", 3, [rec.gen])
    assert len(text_hits) == 3  # text queries reach the frames collection through CLIP


def test_without_clip_weights_frames_are_skipped_with_one_line(slide_video: Path, tmp_path,
                                                               run_cli):
    out = run_cli("ingest", str(slide_video), "--index", str(tmp_path / "i"))
    assert out.stdout.count("CLIP frame search is off") == 1
    status = json.loads(run_cli("status", "--json", "--index", str(tmp_path / "i")).stdout)
    assert status[0]["counts"][FRAMES] == 0 and status[0]["counts"][SLIDES] == 6
