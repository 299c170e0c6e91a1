"""Parallel generation for prompts that share a prefix, on the same model weights.

Token generation on a CPU is bound by memory bandwidth: every step reads all the weights, whether
it advances one sequence or eight. So the bulk path decodes up to ``parallel`` sequences in one
batch. A second llama.cpp context on the already-loaded model holds them in one unified KV cache:
the shared prefix (brand voice, examples, brief) is evaluated once on sequence 0 and shared with the
others by reference (``llama_memory_seq_cp``), then each sequence adds its own contact and samples
under its own grammar. The prefix stays cached for the next group with the same prefix.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
from llama_cpp import _internals as internals

from core.backends.llama_decode import Completion, LazyGrammarSampler, is_complete_json


class BatchDecodeError(RuntimeError):
    pass


class BatchDecoder:
    """Decodes several prompts with a common prefix together (see the module docstring)."""

    def __init__(self, llama: Any, parallel: int, n_ctx: int) -> None:
        params = llama_cpp.llama_context_params()
        ctypes.pointer(params)[0] = llama.context_params
        params.n_seq_max = parallel
        params.kv_unified = True
        params.swa_full = True
        params.n_ctx = n_ctx
        self.parallel, self.n_ctx = parallel, n_ctx
        self.n_batch = int(params.n_batch)
        self.llama = llama
        self.context = internals.LlamaContext(model=llama._model, params=params, verbose=False)
        self.ctx = self.context.ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        if getattr(llama, "_lora_adapter", None) is not None:
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(llama._lora_adapter)
            scales = (ctypes.c_float * 1)(llama.lora_scale)
            llama_cpp.llama_set_adapters_lora(self.ctx, adapters, 1, scales)
        self.batch = llama_cpp.llama_batch_init(max(self.n_batch, parallel), 0, 1)
        self.vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
        self.held: list[int] = []  # the prefix held in sequence 0

    def close(self) -> None:
        if self.batch is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        self.context.close()  # type: ignore[no-untyped-call]

    def capacity(self, prefix: int, suffix: int, max_tokens: int) -> int:
        """How many sequences fit the context next to a prefix of ``prefix`` tokens."""
        per_seq = suffix + max_tokens
        return max(0, min(self.parallel, (self.n_ctx - prefix) // max(per_seq, 1)))

    # -- low-level -------------------------------------------------------------------------

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        """Decode (token, position, sequence, want_logits) entries in one llama_decode call."""
        b = self.batch
        for k, (token, pos, seq, logits) in enumerate(entries):
            b.token[k] = token
            b.pos[k] = pos
            b.n_seq_id[k] = 1
            b.seq_id[k][0] = seq
            b.logits[k] = 1 if logits else 0
        b.n_tokens = len(entries)
        status = llama_cpp.llama_decode(self.ctx, b)
        if status != 0:
            raise BatchDecodeError(f"llama_decode failed with status {status}")

    def _feed(self, tokens: Sequence[int], start: int, seq: int, want_last: bool) -> int:
        """Evaluate ``tokens`` for ``seq`` from position ``start``; return the batch index of the
        last token's logits (valid until the next decode)."""
        last_index = -1
        for i in range(0, len(tokens), self.n_batch):
            chunk = tokens[i : i + self.n_batch]
            final = i + self.n_batch >= len(tokens)
            self._decode([(t, start + i + k, seq, want_last and final and k == len(chunk) - 1)
                          for k, t in enumerate(chunk)])
            last_index = len(chunk) - 1
        return last_index

    def _forget(self, seq: int, from_pos: int = 0) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, seq, from_pos, -1)

    # -- generation ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[list[int]],
                 make_sampler: Callable[[int], LazyGrammarSampler], max_tokens: int, *,
                 json_output: bool) -> list[Completion]:
        """Generate for every prompt (they share a prefix), ``parallel`` at a time: when one
        sequence finishes, the next prompt takes its slot (continuous batching), so a long answer
        never holds the others back."""
        if not prompts:
            return []
        # Every sequence keeps at least one token of its own to get fresh logits from.
        prefix_len = min(common_prefix_length(prompts), min(len(p) for p in prompts) - 1)
        prefix = prompts[0][:prefix_len]
        keep = common_prefix_length([self.held, prefix])
        for seq in range(self.parallel):
            self._forget(seq, 0 if seq else keep)
        self.held = prefix[:keep]
        if prefix_len > keep:
            self._feed(prefix[keep:], keep, 0, want_last=False)
        self.held = list(prefix)

        results: list[Completion | None] = [None] * len(prompts)
        slots: dict[int, _Slot] = {}
        waiting = list(range(len(prompts)))
        try:
            while waiting or slots:
                for seq in range(self.parallel):
                    if seq in slots or not waiting:
                        continue
                    index = waiting.pop(0)
                    # The prefix was evaluated for the first prompt; the others share it whole.
                    slot = self._start(seq, index, prompts, prefix_len, make_sampler,
                                       keep if index == 0 else prefix_len)
                    slots[seq] = slot
                    self._advance(slot, slot.first_index, max_tokens, json_output)
                    if slot.done:
                        results[slot.index] = self._finish(slots.pop(seq))
                if not slots:
                    continue
                active = list(slots.items())
                self._decode([(slot.token, slot.position, seq, True) for seq, slot in active])
                for j, (seq, slot) in enumerate(active):
                    slot.position += 1
                    self._advance(slot, j, max_tokens, json_output)
                    if slot.done:
                        results[slot.index] = self._finish(slots.pop(seq))
        finally:
            for slot in slots.values():
                slot.sampler.close()
            for seq in range(self.parallel):
                self._forget(seq, prefix_len if seq == 0 else 0)
        return [r for r in results if r is not None]

    def _start(self, seq: int, index: int, prompts: Sequence[list[int]], prefix_len: int,
               make_sampler: Callable[[int], LazyGrammarSampler], cached: int) -> _Slot:
        """Put prompt ``index`` into sequence ``seq``: share the prefix, evaluate the rest."""
        self._forget(seq, prefix_len if seq == 0 else 0)
        if seq != 0:
            llama_cpp.llama_memory_seq_cp(self.memory, 0, seq, 0, prefix_len)
        prompt = prompts[index]
        first_index = self._feed(prompt[prefix_len:], prefix_len, seq, want_last=True)
        return _Slot(index=index, sampler=make_sampler(index), position=len(prompt),
                     prompt_tokens=len(prompt), cached=cached, first_index=first_index)

    def _advance(self, slot: _Slot, idx: int, max_tokens: int, json_output: bool) -> None:
        """Sample the slot's next token from logits row ``idx``; mark it done when finished."""
        if slot.count >= max_tokens:
            slot.done = True
            return
        token = slot.sampler.sample(self.ctx, idx)
        if slot.sampler.is_end(token):
            slot.done = True
            return
        slot.count += 1
        piece = self.llama.detokenize([token], special=False)
        slot.pieces.append(piece)
        slot.token = int(token)
        if slot.count >= max_tokens or (
                json_output and b"}" in piece and is_complete_json(b"".join(slot.pieces))):
            slot.done = True

    @staticmethod
    def _finish(slot: _Slot) -> Completion:
        slot.sampler.close()
        return Completion(
            text=b"".join(slot.pieces).decode("utf-8", errors="replace"),
            prompt_tokens=slot.prompt_tokens,
            completion_tokens=slot.count,
            cached_tokens=slot.cached,
        )


@dataclass
class _Slot:
    """One prompt in flight in one sequence of the batch."""

    index: int
    sampler: LazyGrammarSampler
    position: int
    prompt_tokens: int
    cached: int
    first_index: int
    token: int = 0
    count: int = 0
    done: bool = False
    pieces: list[bytes] = field(default_factory=list)


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of all ``seqs``."""
    if not seqs:
        return 0
    shortest = min(len(s) for s in seqs)
    n = 0
    while n < shortest and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n
