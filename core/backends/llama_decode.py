"""Token generation on a loaded ``Llama`` with grammar-constrained sampling that stays fast.

llama-cpp-python applies a grammar to every candidate of the vocabulary before sampling, which
for Gemma 3's 262k-token vocabulary makes JSON output about 4x slower than free text. llama.cpp's
own tools avoid that cost: sample as usual, then ask the grammar about the one chosen token; only
when the grammar rejects it, apply the grammar to the whole vocabulary and sample again. The output
obeys the grammar exactly as before; only the cost differs. This module does the same through the
low-level API, and keeps llama-cpp-python's KV-cache prefix reuse.
"""

from __future__ import annotations

import ctypes
import json
import math
import random
from dataclasses import dataclass
from typing import Any

import llama_cpp
import numpy as np

_TOKEN_DTYPE = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


@dataclass(frozen=True)
class Sampling:
    temperature: float
    seed: int | None = None
    repeat_penalty: float = 1.0
    penalty_last_n: int = 64
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05


class LazyGrammarSampler:
    """A llama.cpp sampler chain plus a grammar consulted lazily (see the module docstring)."""

    def __init__(self, llama: Any, gbnf: str | None, sampling: Sampling) -> None:
        self.vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
        self.n_vocab = int(llama.n_vocab())
        params = llama_cpp.llama_sampler_chain_default_params()
        self.chain = llama_cpp.llama_sampler_chain_init(params)
        seed = sampling.seed if sampling.seed is not None else random.getrandbits(32)
        add = llama_cpp.llama_sampler_chain_add
        # Penalties run after top-k (llama.cpp advises against them on the whole vocabulary).
        # When the lazy grammar rejects a token, the chain has already recorded it in its
        # penalty history and the replacement is not recorded: a small, accepted skew.
        penalties = (
            llama_cpp.llama_sampler_init_penalties(
                self.n_vocab, sampling.penalty_last_n, sampling.repeat_penalty, 0.0, 0.0)
            if sampling.repeat_penalty != 1.0 else None
        )
        if sampling.temperature <= 0:
            if penalties:
                add(self.chain, penalties)
            add(self.chain, llama_cpp.llama_sampler_init_greedy())
        else:
            add(self.chain, llama_cpp.llama_sampler_init_top_k(sampling.top_k))
            if penalties:
                add(self.chain, penalties)
            add(self.chain, llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
            add(self.chain, llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
            add(self.chain, llama_cpp.llama_sampler_init_temp(sampling.temperature))
            add(self.chain, llama_cpp.llama_sampler_init_dist(seed))
        self.grammar = None
        if gbnf is not None:
            self.grammar = llama_cpp.llama_sampler_init_grammar(
                self.vocab, gbnf.encode("utf-8"), b"root"
            )
            if not self.grammar:
                raise ValueError("llama.cpp rejected the grammar")
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_arr = llama_cpp.llama_token_data_array(
            data=self._one, size=1, selected=-1, sorted=False
        )
        self._all = np.zeros(self.n_vocab, dtype=_TOKEN_DTYPE)
        self._all_ptr = self._all.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
        self.full_passes = 0

    def close(self) -> None:
        if self.chain:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
        if self.grammar:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None

    def sample(self, ctx: Any, idx: int) -> int:
        token = int(llama_cpp.llama_sampler_sample(self.chain, ctx, idx))
        if self.grammar is None:
            return token
        logits = llama_cpp.llama_get_logits_ith(ctx, idx)
        self._one[0].id = token  # type: ignore[assignment]
        self._one[0].logit = logits[token]
        self._one[0].p = 0.0
        self._one_arr.size, self._one_arr.selected, self._one_arr.sorted = 1, -1, False
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._one_arr))
        if math.isinf(self._one[0].logit) and self._one[0].logit < 0:
            token = self._resample(logits)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def _resample(self, logits: Any) -> int:
        """The chosen token broke the grammar: constrain the whole vocabulary, sample again."""
        self.full_passes += 1
        self._all["id"] = np.arange(self.n_vocab, dtype=np.intc)
        self._all["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._all["p"] = 0.0
        arr = llama_cpp.llama_token_data_array(
            data=self._all_ptr, size=self.n_vocab, selected=-1, sorted=False
        )
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(arr))
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        return int(arr.data[arr.selected].id)

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


def reuse_prefix(llama: Any, tokens: list[int]) -> int:
    """Keep the KV cache of the longest common prefix with what the ``Llama`` holds; return how
    many prompt tokens need no evaluation. (One token is always re-evaluated for fresh logits.)"""
    held = llama.n_tokens
    common = 0
    if held:
        previous = llama.input_ids[:held]
        limit = min(held, len(tokens))
        mismatch = np.nonzero(previous[:limit] != np.asarray(tokens[:limit]))[0]
        common = int(mismatch[0]) if len(mismatch) else limit
    keep = min(common, len(tokens) - 1)
    if keep > 0 and llama._ctx.kv_cache_seq_rm(-1, keep, -1):
        llama.n_tokens = keep
        return keep
    llama.reset()
    return 0


def complete(llama: Any, tokens: list[int], max_tokens: int, sampler: LazyGrammarSampler,
             *, json_output: bool) -> Completion:
    """Evaluate ``tokens`` (reusing the cached prefix) and sample up to ``max_tokens``.
    With ``json_output`` generation stops as soon as the text is one complete JSON value."""
    cached = reuse_prefix(llama, tokens)
    llama.eval(tokens[cached:])
    ctx = llama._ctx.ctx
    pieces: list[bytes] = []
    n = 0
    while n < max_tokens:
        token = sampler.sample(ctx, -1)
        if sampler.is_end(token):
            break
        n += 1
        piece = llama.detokenize([token], special=False)
        pieces.append(piece)
        if json_output and b"}" in piece and is_complete_json(b"".join(pieces)):
            break
        llama.eval([token])
    text = b"".join(pieces).decode("utf-8", errors="replace")
    return Completion(text=text, prompt_tokens=len(tokens), completion_tokens=n,
                      cached_tokens=cached)


def is_complete_json(raw: bytes) -> bool:
    """Whether ``raw`` is one whole JSON value (generation can stop there)."""
    try:
        json.loads(raw.decode("utf-8"), strict=False)
    except (UnicodeDecodeError, ValueError):
        return False
    return True
