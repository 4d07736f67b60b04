"""Keep llama.cpp's evaluated prompt prefixes between calls.

Every turn sends the router prompt, then the answer prompt, and each starts with fixed
instructions. llama.cpp reuses only the prefix of the prompt it evaluated last, so with the two
alternating, each call evaluated its ~200 instruction tokens again: 3-4 s per call at 62 tok/s on
2 cores. This cache keeps the model state after the last few prompts, and llama.cpp restores the
one sharing the longest prefix with the next prompt (measured: the router then evaluates 11
tokens instead of 246). The fixed starts evaluated at warm-up are pinned: a prompt used now and
then (the follow-up router, after six other calls) had lost its state, and its ~300 tokens
were read again (a follow-up's route took 6-8 s instead of 3-5).

Import this module only after assistant.local_model (it sets OMP_WAIT_POLICY before llama_cpp).
"""

from __future__ import annotations

from collections.abc import Sequence

from llama_cpp.llama import LlamaState
from llama_cpp.llama_cache import LlamaRAMCache


class PromptStateCache(LlamaRAMCache):
    """llama.cpp's RAM cache, bounded by a number of states and without their logits.

    A state carries a copy of the logits buffer (n_batch x vocabulary floats: 311 MB for Qwen2.5)
    that the stock cache neither counts against its capacity nor needs: llama.cpp evaluates at
    least one token after restoring a state, which rewrites the logits. Only the last row is kept.
    """

    def __init__(self, max_states: int = 6) -> None:
        super().__init__(capacity_bytes=0)
        self.max_states = max_states  # besides the pinned ones
        self.pinned: set[tuple[int, ...]] = set()
        self._latest: tuple[int, ...] | None = None

    @property
    def cache_size(self) -> int:
        return sum(s.llama_state_size + s.scores.nbytes for s in self.cache_state.values())

    def pin_latest(self) -> None:
        """Keep the state stored last for good (a prompt's fixed start, at warm-up)."""
        if self._latest is not None:
            self.pinned.add(self._latest)

    def __setitem__(self, key: Sequence[int], value: LlamaState) -> None:
        value.scores = value.scores[-1:].copy()
        key = tuple(key)
        self.cache_state.pop(key, None)
        self.cache_state[key] = value
        self._latest = key
        unpinned = [k for k in self.cache_state if k not in self.pinned]  # oldest first
        for old in unpinned[:max(0, len(unpinned) - self.max_states)]:
            del self.cache_state[old]
