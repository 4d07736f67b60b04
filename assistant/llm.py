"""The assistant's chat model: one small interface over two LangChain backends.

- "local": the packaged GGUF (or a user's own) run in-process by llama.cpp (local_model.py);
- "openai": any OpenAI-compatible HTTP API through langchain_openai.ChatOpenAI.

Callers pass plain messages ({"role": "system"|"user"|"assistant", "content": str}) and get text,
text deltas or a parsed JSON object; `.langchain` gives the LangChain chat model for chains and
tools. Configuration arrives as an LLMConfig: nothing here reads environment variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import jsonschema
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (AIMessage, BaseMessage, HumanMessage, SystemMessage,
                                     ToolMessage)

from clipcite.assistant import local_model

# {"role": "system"|"user"|"assistant"|"tool", "content": str}; an assistant message that
# called tools also has "tool_calls" ([{"id", "name", "args"}]), a tool's reply "tool_call_id".
Message = dict[str, Any]

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
_LC_MESSAGE = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


log = logging.getLogger("clipcite.assistant")


class LLMError(RuntimeError):
    pass


class ServiceError(RuntimeError):
    """The answering service failed the request (refused it, could not be reached, timed out,
    was busy). Its message is one plain sentence for the person asking; the service's own
    error is its cause (with the traceback)."""


def service_sentence(error: openai.APIError) -> str:
    """What a failure of the answering service means, in one sentence."""
    status = getattr(error, "status_code", None)
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return (f"The answering service refused the request (HTTP {status}): its API key or "
                "permissions need checking by an administrator.")
    if isinstance(error, openai.RateLimitError):
        return "The answering service is busy (too many requests); please try again in a minute."
    if isinstance(error, openai.APITimeoutError):
        return "The answering service took too long to reply; please try again."
    if isinstance(error, openai.APIConnectionError):
        return "The answering service cannot be reached right now; please try again later."
    return (f"The answering service failed the request (HTTP {status}); please try again, and "
            "tell an administrator if it keeps happening.")


@contextlib.contextmanager
def _service_errors() -> Iterator[None]:
    """Failures of a remote service as a ServiceError (one sentence, caused by the original)."""
    try:
        yield
    except openai.APIError as e:
        raise ServiceError(service_sentence(e)) from e


@dataclass(frozen=True)
class LLMConfig:
    backend: Literal["auto", "local", "openai"] = "auto"  # auto: openai when base_url/api_key set
    model: str | None = None  # local: packaged default or a .gguf path; openai: a model name
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512
    n_ctx: int = 4096
    threads: int = 0  # 0: all cores
    cache_dir: Path | None = None  # where the packaged GGUF is assembled
    chat_format: str | None = None  # local: None uses the GGUF's own chat template
    timeout: float = 120.0  # openai: seconds per request
    max_retries: int = 2  # openai: client retries on 5xx and connection errors


def choose_backend(config: LLMConfig) -> Literal["local", "openai"]:
    if config.backend != "auto":
        return config.backend
    return "openai" if (config.base_url or config.api_key) else "local"


# -- replies as JSON ------------------------------------------------------------------------

def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def parse_json_reply(text: str, schema: dict) -> dict:
    """The first JSON object in a model's reply, checked against schema."""
    body = _strip_fences(text)
    start = body.find("{")
    try:
        if start < 0:
            raise ValueError("no JSON object in the reply")
        value, _ = json.JSONDecoder().raw_decode(body, start)
    except ValueError as e:
        raise LLMError(f"the model's reply is not JSON ({e}): {text[:200]!r}") from None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        raise LLMError(f"the model's JSON does not match the schema: {e.message}") from None
    return value


def with_schema_hint(messages: list[Message], schema: dict) -> list[Message]:
    """The messages with the schema spelt out in the system message (for unconstrained APIs,
    which also require the word "JSON" in the prompt)."""
    hint = f"Reply with one JSON object that matches this JSON schema: {json.dumps(schema)}"
    if messages and messages[0]["role"] == "system":
        first = {"role": "system", "content": f"{messages[0]['content']}\n\n{hint}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": hint}, *messages]


# -- the interface --------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


def to_langchain(messages: list[Message]) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for m in messages:
        role = m.get("role", "")
        if role == "tool":
            if not m.get("tool_call_id"):
                raise ValueError("a tool message needs the tool_call_id it answers")
            out.append(ToolMessage(content=m["content"], tool_call_id=m["tool_call_id"]))
        elif role == "assistant" and m.get("tool_calls"):
            out.append(AIMessage(content=m.get("content") or "", tool_calls=[
                {"id": c["id"], "name": c["name"], "args": c["args"]} for c in m["tool_calls"]]))
        elif role in _LC_MESSAGE:
            out.append(_LC_MESSAGE[role](content=m["content"]))
        else:
            raise ValueError(f"unknown message role {role!r} (system, user, assistant, tool)")
    return out


class ChatModel(ABC):
    """Text, text deltas and schema-checked JSON from a chat model; no LangChain types leak."""

    # Errors after which json() tries its next request shape (the server rejected this one).
    _json_fallback_errors: tuple[type[Exception], ...] = ()

    # Request shapes each endpoint has rejected, shared by every model object of the process
    # talking to it (the web app has one per worker thread): probed once, not sent again.
    _rejected: dict[str, int] = {}
    _rejected_lock = threading.Lock()
    _answered: set[str] = set()  # endpoints that have answered a JSON request shape

    def __init__(self, chat: BaseChatModel, endpoint: str = "",
                 probe: BaseChatModel | None = None) -> None:
        self._chat = chat
        self._endpoint = endpoint
        # The same model without client retries, for a request shape the endpoint may not
        # support: llama.cpp's server answers an unknown response_format with HTTP 500, which
        # the client would send twice more before the next shape is tried.
        self._probe = probe or chat

    @property
    def _json_skip(self) -> int:
        return self._rejected.get(self._endpoint, 0)

    @_json_skip.setter
    def _json_skip(self, value: int) -> None:
        with self._rejected_lock:
            self._rejected[self._endpoint] = max(value, self._rejected.get(self._endpoint, 0))

    @property
    def langchain(self) -> BaseChatModel:
        return self._chat

    def stream(self, messages: list[Message]) -> Iterator[str]:
        with _service_errors():
            for chunk in self._chat.stream(to_langchain(messages)):
                if text := str(chunk.text):
                    yield text

    def complete(self, messages: list[Message]) -> str:
        with _service_errors():
            return str(self._chat.invoke(to_langchain(messages)).text)

    def prefill(self, messages: list[Message]) -> None:
        """Prepare for prompts that start like these messages (a no-op for remote APIs)."""

    def first_word_probability(self, messages: list[Message],
                               words: Sequence[str]) -> float | None:
        """How likely the reply's first token starts one of `words` (0-1), or None when this
        model does not say. Only the packaged local model does: a probability means something
        only against a threshold calibrated for that model (eval/gate.py)."""
        return None

    # Whether call_tools works: native function calling (remote APIs). The local 1.5B model
    # chose tools in 0 of 5 tries through llama.cpp's function calling, so it routes with JSON.
    can_call_tools = False

    def call_tools(self, messages: list[Message],
                   tools: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
        """The model's reply text and the tools it asks to call ([] when it is done)."""
        raise LLMError("this model does not call tools")

    def json(self, messages: list[Message], schema: dict) -> dict:
        """A reply object matching the JSON schema, or LLMError (ServiceError when the
        service failed the request)."""
        with _service_errors():
            return self._json(messages, schema)

    def _json(self, messages: list[Message], schema: dict) -> dict:
        error: Exception | None = None
        requests = self._json_requests(messages, schema)
        for i, (attempt, options) in enumerate(requests):
            if i < self._json_skip:
                continue
            last = i == len(requests) - 1
            chat = self._chat if last or self._endpoint in self._answered else self._probe
            try:
                reply = chat.invoke(to_langchain(attempt), **options)
                self._answered.add(self._endpoint)  # this shape works here: retry it as usual
                return parse_json_reply(str(reply.text), schema)
            except self._json_fallback_errors as e:
                # Rejected by the server, not the model: skip this shape from now on (saves a
                # round trip and the client's retries on every later call). Keep the last one.
                log.warning("the server rejected JSON request shape %d; trying the next", i,
                            exc_info=True)
                self._json_skip = min(i + 1, len(requests) - 1)
                error = e
            except LLMError as e:
                # The model's reply was not the JSON asked for: the next shape constrains it
                # (with the local model the free reply comes first and this is routine).
                log.info("reply %d was not schema-valid JSON", i, exc_info=True)
                error = e
        raise LLMError(f"no schema-valid JSON from the model: {error}") from error

    @abstractmethod
    def _json_requests(self, messages: list[Message],
                       schema: dict) -> list[tuple[list[Message], dict[str, Any]]]:
        """(messages, call options such as response_format) pairs to try in order."""


# The longest JSON the assistant asks for (a summary chunk's line numbers) is ~120 tokens; a
# free reply that runs past this is not going to be valid, and stops costing time here.
OPTIMISTIC_JSON_TOKENS = 200


class LocalChatModel(ChatModel):
    def prefill(self, messages: list[Message]) -> None:
        # The evaluated prompt stays in the model's prompt-state cache for good
        # (assistant/prompt_cache.py); later prompts sharing its start skip that part.
        with _service_errors():
            self._chat.keep_prompt(to_langchain(messages))

    def first_word_probability(self, messages: list[Message],
                               words: Sequence[str]) -> float | None:
        with _service_errors():
            return self._chat.first_word_probability(to_langchain(messages), words)

    def _json_requests(self, messages: list[Message],
                       schema: dict) -> list[tuple[list[Message], dict[str, Any]]]:
        # llama.cpp compiles the schema into a grammar: the output cannot leave it, so the prompt
        # needs no schema (local prompt tokens are slow). It ignores type "json_schema".
        # Sampling under that grammar is slow on 2 cores (it is checked against the whole
        # vocabulary at every step), and with a worked example in the prompt the free reply is
        # nearly always valid already. So the free reply comes first, short and checked against
        # the schema; only one that fails is generated again under the grammar: the tactic of
        # llama.cpp's own sampler (sample freely, resample under the grammar if rejected), per
        # reply instead of per token. json() still returns schema-valid JSON or raises.
        return [(messages, {"max_tokens": OPTIMISTIC_JSON_TOKENS}),
                (messages, {"response_format": {"type": "json_object", "schema": schema}})]


class OpenAIChatModel(ChatModel):
    _json_fallback_errors = (openai.BadRequestError, openai.UnprocessableEntityError,
                             openai.InternalServerError)
    can_call_tools = True

    def call_tools(self, messages: list[Message],
                   tools: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
        with _service_errors():
            reply = self._chat.bind_tools(tools).invoke(to_langchain(messages))
        calls = [ToolCall(c.get("id") or f"call-{i}", c["name"], dict(c.get("args") or {}))
                 for i, c in enumerate(getattr(reply, "tool_calls", None) or [])]
        return str(reply.text), calls

    def _json_requests(self, messages: list[Message],
                       schema: dict) -> list[tuple[list[Message], dict[str, Any]]]:
        # OpenAI's structured outputs first; llama.cpp's server rejects that shape (HTTP 500) but
        # constrains {"type": "json_object", "schema": ...}; plain json_object for everyone else.
        hinted = with_schema_hint(messages, schema)
        return [
            (messages, {"response_format": {"type": "json_schema", "json_schema": {
                "name": "reply", "schema": schema}}}),
            (hinted, {"response_format": {"type": "json_object", "schema": schema}}),
            (hinted, {"response_format": {"type": "json_object"}}),
        ]


# -- building a model -----------------------------------------------------------------------

def _is_openai_host(base_url: str | None) -> bool:
    return base_url is None or urlparse(base_url).hostname == "api.openai.com"


def _openai_chat(config: LLMConfig) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    if config.api_key is None and _is_openai_host(config.base_url):
        raise LLMError("the OpenAI API needs an api_key")
    # ChatOpenAI sends the cap as max_completion_tokens; other servers (llama.cpp's, older vLLM)
    # only know max_tokens and would otherwise generate without limit.
    extra = {} if _is_openai_host(config.base_url) else {"max_tokens": config.max_tokens}
    # Every setting is explicit so nothing is picked up from OPENAI_* environment variables;
    # OpenAI-compatible servers speak Chat Completions only, never the Responses API.
    return ChatOpenAI(
        model=config.model or DEFAULT_OPENAI_MODEL,
        base_url=config.base_url or OPENAI_BASE_URL,
        api_key=config.api_key or "unused",  # local servers often take no key
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        timeout=config.timeout,
        max_retries=config.max_retries,
        use_responses_api=False,
        extra_body=extra or None,
    )


def _local_chat(config: LLMConfig) -> BaseChatModel:
    try:
        path = local_model.resolve_gguf(config.model, config.cache_dir)
    except local_model.LocalModelError as e:
        raise LLMError(str(e)) from e
    return local_model.ChatLlamaCpp(
        model_path=str(path), n_ctx=config.n_ctx, threads=config.threads,
        chat_format=config.chat_format, temperature=config.temperature,
        max_tokens=config.max_tokens)


def load_chat_model(config: LLMConfig) -> ChatModel:
    """The configured backend behind our interface (the local model loads once per process)."""
    if choose_backend(config) == "openai":
        chat = _openai_chat(config)
        return OpenAIChatModel(chat, endpoint=f"{chat.openai_api_base} {chat.model_name}",
                               probe=_openai_chat(dataclasses.replace(config, max_retries=0)))
    return LocalChatModel(_local_chat(config))
