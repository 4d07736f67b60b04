"""Several people chatting at once with the web app: time to the first words and to the whole
answer, per number of answer threads (`web_workers`), measured in one run.

    .venv/bin/python eval/bench_chat.py [--index tests/artifacts/dev-index] [--chats 5]
        [--workers 1 3] [--rounds 2]

Serves the app (`ui.web.app.create_app`, the embedded local model unless the settings name an
endpoint) on 127.0.0.1 over an existing index and starts `--chats` clients at the same moment,
each asking the development questions (eval/dev_answers.jsonl) through Gradio's HTTP API, as
the page does, one after another for `--rounds` questions. A first word is the first streamed
update whose answer is more than the "…" placeholder. `--workers 1` is the app as it was (one
answer thread): the baseline in the same run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from clipcite.ui.environment import set_defaults  # noqa: E402

set_defaults()  # before any model library loads, as the CLI does


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(url: str, question: str) -> tuple[float | None, float]:
    """(seconds to the first words, seconds to the whole answer) of one question."""
    import httpx

    data = [{"text": question, "files": []}, [], [], [], [], None, None]
    t0 = time.monotonic()
    first = None
    with httpx.Client(base_url=url, timeout=600) as http:
        event = http.post("/gradio_api/call/respond", json={"data": data}).json()["event_id"]
        with http.stream("GET", f"/gradio_api/call/respond/{event}") as stream:
            for line in stream.iter_lines():
                if first is None and line.startswith("data:") and "assistant" in line:
                    try:
                        chat = json.loads(line[5:])[1]
                        content = chat[-1]["content"] if chat else ""
                    except (ValueError, LookupError, TypeError):
                        continue
                    if isinstance(content, list):  # Gradio 6: a list of typed parts
                        content = " ".join(str(p.get("text", "")) if isinstance(p, dict)
                                           else str(p) for p in content)
                    if str(content).strip() not in ("", "…"):
                        first = time.monotonic() - t0
    return first, time.monotonic() - t0


def run(settings, chats: int, rounds: int, questions: list[str]) -> dict:
    import uvicorn

    from clipcite.ui.web.app import create_app

    app = create_app(settings, library_dir=Path(settings.index_dir).parent / "bench-uploads")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    app.state.clipcite.engine.wait_ready(600)
    ask(f"http://127.0.0.1:{port}", questions[0])  # warm: the first question loads more
    firsts: list[float] = []
    wholes: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for r in range(rounds):
            first, whole = ask(f"http://127.0.0.1:{port}", questions[(n * rounds + r)
                                                                     % len(questions)])
            with lock:
                wholes.append(whole)
                if first is not None:
                    firsts.append(first)

    t0 = time.monotonic()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(chats)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    wall = time.monotonic() - t0
    server.should_exit = True
    thread.join(30)
    return {"first": firsts, "whole": wholes, "wall": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default=str(REPO / "tests" / "artifacts" / "dev-index"))
    parser.add_argument("--chats", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from clipcite.ui.settings import Settings

    questions = [json.loads(line)["question"] for line in
                 (REPO / "eval" / "dev_answers.jsonl").read_text().splitlines() if line.strip()]
    base = Settings.load().with_overrides(index_dir=Path(args.index))
    rows = []
    for workers in args.workers:
        out = run(dataclasses.replace(base, web_workers=workers), args.chats, args.rounds,
                  questions)
        f, w = out["first"], out["whole"]
        rows.append(f"| {workers} | {args.chats} | {len(w)} | "
                    f"{statistics.median(f):.1f} / {percentile(f, 0.95):.1f} | "
                    f"{statistics.median(w):.1f} / {percentile(w, 0.95):.1f} | {out['wall']:.0f} |")
        print(rows[-1], flush=True)
    config = base.llm_config()
    print(f"\nmodel: {config.backend} {config.model or '(packaged local model)'}\n")
    print("| answer threads | chats at once | answers | first words p50 / p95 (s) | "
          "whole answer p50 / p95 (s) | wall (s) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
