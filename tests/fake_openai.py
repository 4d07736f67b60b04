"""A fake OpenAI-compatible chat API on 127.0.0.1, shared by the remote-path tests."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    """A stand-in for an OpenAI-compatible chat API on 127.0.0.1.

    It exists because no remote LLM API can be reached from this machine (registries only). It
    serves POST /v1/chat/completions, streaming (SSE chunks, then `data: [DONE]`) and not, records
    every request (headers and JSON body), and can reject response_format type "json_schema" with
    HTTP 500 the way llama.cpp's own server does.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.deltas = ["Hel", "lo", ", ", "world", "!"]
        # Non-streaming replies, the last repeating: text, or {"tool_calls": [{"name": str,
        # "arguments": dict}]} for a reply that calls tools.
        self.replies: list[str | dict] = ["Hello, world!"]
        self.reject_json_schema = False
        self.delta_delay = 0.0  # seconds between streamed chunks (a slow model)
        self.chunks_sent = 0  # streamed chunks that reached the client, all streams together
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _completion(self, body: dict) -> dict:
        n = sum(1 for r in self.requests if not r["body"].get("stream"))
        reply = self.replies[min(n, len(self.replies)) - 1]
        message: dict = {"role": "assistant", "content": reply}
        finish = "stop"
        if isinstance(reply, dict):  # {"tool_calls": [{"name": ..., "arguments": {...}}]}
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{n}_{i}", "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                for i, c in enumerate(reply["tool_calls"])]}
            finish = "tool_calls"
        return {"id": "fake-1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}

    @staticmethod
    def _numbered(text: str, body: dict) -> str:
        """A delta's "{line:WORD}" becomes the number of the first numbered line ("[3] ...")
        of the last message that holds WORD: the answer cites the line a real model would,
        however many context lines the prompt put around it. Unknown words become 99.
        "{quote:N}" becomes the text of line N (a sentence that line supports)."""
        prompt = (body["messages"][-1].get("content") or "") if body.get("messages") else ""
        lines = re.findall(r"^\[(\d+)\] (.*)$", prompt, re.M)

        def number(m: re.Match) -> str:
            word = m.group(1).lower()
            return next((n for n, line in lines if word in line.lower()), "99")

        def quote(m: re.Match) -> str:
            return next((line for n, line in lines if n == m.group(1)), "")

        return re.sub(r"\{quote:(\d+)\}", quote, re.sub(r"\{line:([^}]+)\}", number, text))

    def _chunks(self, body: dict) -> Iterator[dict]:
        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {"id": "fake-1", "object": "chat.completion.chunk", "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        for text in self.deltas:
            yield chunk({"content": self._numbered(text, body)})
        yield chunk({}, "stop")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send_json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append({"path": self.path, "headers": headers, "body": body})
                if self.path != "/v1/chat/completions":
                    return self._send_json(404, {"error": {"message": "not found"}})
                kind = (body.get("response_format") or {}).get("type")
                if fake.reject_json_schema and kind == "json_schema":
                    return self._send_json(500, {"error": {"message": "json_schema unsupported"}})
                if not body.get("stream"):
                    return self._send_json(200, fake._completion(body))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for chunk in fake._chunks(body):
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        fake.chunks_sent += 1
                        time.sleep(fake.delta_delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: the answer was cancelled

        return Handler


def remote(fake: FakeOpenAI):
    """clipcite's remote chat model pointed at the fake server."""
    from clipcite.assistant.llm import LLMConfig, load_chat_model

    return load_chat_model(LLMConfig(backend="openai", base_url=fake.base_url, api_key="k",
                                     model="test-model"))


def route_reply(**fields) -> str:
    """A router reply (JSON) with the given fields over an "answer" with nothing named."""
    base = {"intent": "answer", "question": "", "queries": [], "recording": None,
            "speaker": None}
    return json.dumps({**base, **fields})
