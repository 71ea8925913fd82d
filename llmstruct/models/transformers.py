"""Default backend: a local transformers model, JSON constrained by an outlines grammar.

outlines 1.3.3 builds the grammar (``outlines.from_transformers`` + ``outlines.Generator``
or its llguidance backend); generation is done here, because outlines' ``model(...)`` /
``model.batch(...)`` return only strings and we need token counts and whether the
``max_new_tokens`` cap was hit. Batches are one ``model.generate`` call; the chat's stream
is our own greedy loop over llguidance's matcher, which feeds grammar-forced tokens to the
model in one pass (``_forced_steps``).

JSON is compact: the grammar allows no whitespace outside strings. For ``outlines_core``
this is ``JsonSchema(schema, whitespace_pattern="")``; for ``llguidance`` the schema gets
``"x-guidance": {"whitespace_flexible": false, "item_separator": ",", "key_separator": ":"}``
(outlines' llguidance backend rejects ``whitespace_pattern``). Without it small models
emit newlines and indentation until they hit the token cap.

torch, transformers and outlines are imported only when the backend is built.
"""

from __future__ import annotations

import copy
import inspect
import json
import queue
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

from pydantic import BaseModel

from llmstruct.models.base import Capabilities, GenerationResult, StructuredBackend
from llmstruct.models.provision import ModelError, force_offline
from llmstruct.models.scheduler import STREAM_TIMEOUT_S
from llmstruct.models.schema_json import compact_json_schema

GRAMMARS = ("llguidance", "outlines_core")
DEFAULT_GRAMMAR = "llguidance"
GRAMMAR_CACHE = 64
PREFIX_CACHE = 4
MAX_BATCH = 8


class TransformersBackend(StructuredBackend):
    """A transformers causal LM on CPU with grammar-constrained JSON output.

    ``model_dir``: a transformers folder (see :func:`llmstruct.models.provision.prepare`).
    ``threads``: torch intra-op threads (process-wide setting).
    ``grammar``: ``"llguidance"`` (default) or ``"outlines_core"``.
    ``dtype``: ``"bfloat16"`` (default), ``"float32"`` or ``"float16"``.
    ``max_batch``: streamed generations decoded together; more wait their turn.

    Decoding is greedy. Concurrent streams share forward passes; other calls take the
    model's lock in turn.
    """

    name = "transformers"

    def __init__(
        self,
        model_dir: str | Path,
        threads: int = 2,
        grammar: str = DEFAULT_GRAMMAR,
        dtype: str = "bfloat16",
        max_batch: int = MAX_BATCH,
    ):
        if grammar not in GRAMMARS:
            raise ModelError(f"unknown grammar backend {grammar!r}; use one of {', '.join(GRAMMARS)}")
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise ModelError(
                f"{self.model_dir} is not a transformers model folder; "
                "prepare one with llmstruct.models.provision.prepare('qwen2.5-coder-0.5b')"
            )
        self.model_id = self.model_dir.parent.name if self.model_dir.name == "hf" else self.model_dir.name
        self.grammar = grammar
        self.threads = int(threads)
        self.dtype = dtype
        self._init_state(max_batch)

        force_offline()
        try:
            import outlines
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise ModelError(
                f"the transformers backend needs torch, transformers and outlines ({e}); "
                "install torch==2.13.0 first, then: pip install -e '.[llm]'"
            ) from e

        self._torch = torch
        self._outlines = outlines
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(dtype)
        if torch_dtype is None:
            raise ModelError(f"unsupported dtype {dtype!r}; use bfloat16, float16 or float32")

        t0 = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(
                str(self.model_dir), dtype=torch_dtype, local_files_only=True
            )
        except Exception as e:
            raise ModelError(f"cannot load model from {self.model_dir}: {type(e).__name__}: {e}") from e
        self.model.eval()
        self.load_seconds = time.perf_counter() - t0
        self._setup_tokens()
        # outlines wraps model+tokenizer; we only use it to build grammar processors.
        self._om = outlines.from_transformers(self.model, self.tokenizer)
        self.tokenizer.padding_side = "left"

    @classmethod
    def from_model(cls, model, tokenizer, *, threads: int = 2, grammar: str = DEFAULT_GRAMMAR, model_id: str = "custom",
                   max_batch: int = MAX_BATCH):
        """Wrap an already loaded model and tokenizer (tests, experiments)."""
        self = cls.__new__(cls)
        force_offline()
        import outlines
        import torch

        if grammar not in GRAMMARS:
            raise ModelError(f"unknown grammar backend {grammar!r}; use one of {', '.join(GRAMMARS)}")
        self.model_dir = Path(".")
        self.model_id = model_id
        self.grammar = grammar
        self.threads = int(threads)
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self._init_state(max_batch)
        self._torch = torch
        self._outlines = outlines
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.load_seconds = 0.0
        self._setup_tokens()
        self._om = outlines.from_transformers(self.model, self.tokenizer)
        self.tokenizer.padding_side = "left"
        return self

    # ------------------------------------------------------------------ setup

    def _init_state(self, max_batch: int) -> None:
        self.max_batch = int(max_batch)
        self._lock = threading.Lock()  # the model: one forward pass at a time
        self._generators: dict[tuple[str, str], Any] = {}
        self._prefixes: dict[str, Any] = {}
        self.prefix_reuses = 0  # streamed generations that started from a prefilled prefix
        self._cache_lock = threading.RLock()  # grammar caches; generation has its own lock
        self._llg_backend: Any = None
        self._scheduler: Any = None

    def _setup_tokens(self) -> None:
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        eos: list[int] = []
        # The grammar engines end on the tokenizer's EOS; the model's generation config
        # may name others (e.g. <|endoftext|>): stop on any of them.
        for src in (tok.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            for i in src if isinstance(src, (list, tuple)) else [src]:
                if i is not None and int(i) not in eos:
                    eos.append(int(i))
        if not eos:
            raise ModelError(f"model {self.model_id} has no end-of-sequence token")
        self.eos_token_ids = eos
        self.pad_token_id = int(tok.pad_token_id)
        # transformers 5.x renamed the forward argument past_key_values to cache
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.last_stream: dict[str, int] = {}

    def _generator(self, schema: type[BaseModel]):
        """An object whose ``logits_processor`` holds ``schema``'s grammar, cached per schema
        (the most recent :data:`GRAMMAR_CACHE` schemas: chat schemas change with every
        question, labelling schemas repeat).

        For llguidance one outlines ``LLGuidanceBackend`` is kept for the model's life:
        ``outlines.Generator`` builds a new one per schema, converting the whole tokenizer
        each time (seconds), while the grammar itself compiles in milliseconds.
        """
        from outlines.types.dsl import JsonSchema

        schema_dict = compact_json_schema(schema, self.grammar)
        key = (json.dumps(schema_dict, sort_keys=True), self.grammar)
        with self._cache_lock:
            gen = self._generators.pop(key, None)
            if gen is None:
                try:
                    if self.grammar == "outlines_core":
                        term = JsonSchema(schema_dict, whitespace_pattern="")
                        gen = self._outlines.Generator(self._om, term, backend=self.grammar)
                    else:
                        processor = self.llguidance_backend().get_json_schema_logits_processor(json.dumps(schema_dict))
                        gen = SimpleNamespace(logits_processor=processor)
                except Exception as e:
                    raise ModelError(f"cannot build a {self.grammar} grammar for {schema.__name__}: {e}") from e
            self._generators[key] = gen  # re-inserted last: dict order is recency order
            while len(self._generators) > GRAMMAR_CACHE:
                self._generators.pop(next(iter(self._generators)))
            return gen

    def llguidance_backend(self):
        """outlines' llguidance backend for this model, built once: it holds the tokenizer
        converted for llguidance (seconds of work), which every grammar shares."""
        with self._cache_lock:
            if self._llg_backend is None:
                from outlines.backends.llguidance import LLGuidanceBackend

                self._llg_backend = LLGuidanceBackend(self._om)
            return self._llg_backend

    # ------------------------------------------------------------------ interface

    def chat_prompt(self, system: str, user: str) -> str:
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def generate_json(
        self, prompts: list[str], schema: type[BaseModel] | Sequence[type[BaseModel]], max_new_tokens: int
    ) -> list[GenerationResult]:
        if isinstance(schema, type):
            return self._generate(prompts, max_new_tokens, self._generator(schema).logits_processor)
        schemas = list(schema)
        if len(schemas) != len(prompts):
            raise ValueError("one schema per prompt")
        if len({id(s) for s in schemas}) == 1:
            return self._generate(prompts, max_new_tokens, self._generator(schemas[0]).logits_processor)
        if self.grammar == "llguidance":
            processors = [self._generator(s).logits_processor for s in schemas]
            return self._generate(prompts, max_new_tokens, _RowGrammars(processors, self.eos_token_ids))
        # outlines_core holds one grammar per call: run each schema's prompts as a sub-batch.
        results: list[GenerationResult | None] = [None] * len(prompts)
        for s in dict.fromkeys(schemas):
            rows = [i for i, x in enumerate(schemas) if x is s]
            for i, r in zip(rows, self.generate_json([prompts[i] for i in rows], s, max_new_tokens)):
                results[i] = r
        return results  # type: ignore[return-value]

    def generate_text(self, prompts: list[str], max_new_tokens: int) -> list[GenerationResult]:
        return self._generate(prompts, max_new_tokens, None)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=True, prefix_cache=True, batching=True, grammar=self.grammar, threads=self.threads)

    def generate_json_stream(self, prompt: str, schema: type[BaseModel], max_new_tokens: int,
                             prefix: str = "") -> Iterator[str]:
        """Text pieces of one constrained generation as they are decoded (the chat streams
        them); same grammar and greedy decoding as :meth:`generate_json`.

        ``prefix``: a start of ``prompt`` shared by many calls (system message and fixed
        instructions). Its key/value cache is computed once and reused, so only the rest of
        the prompt is prefilled: on CPU, prefill is most of the wait for the first token.

        With llguidance, concurrent streams are rows of one batch
        (:class:`~llmstruct.models.scheduler.StreamScheduler`), and tokens the grammar
        forces (JSON keys, the rest of a quote once its first tokens pick one of the
        admitted sentences) are fed to the model in one forward pass instead of one each.
        """
        if prefix and not prompt.startswith(prefix):
            raise ValueError("prefix must be the start of prompt")
        if self.grammar != "llguidance":
            yield from self._locked_stream(prompt, schema, int(max_new_tokens), prefix)
            return
        import llguidance.torch as llt
        from llguidance import LLMatcher

        processor = self._generator(schema).logits_processor
        matcher = LLMatcher(processor.llg_tokenizer, processor.grammar)
        bitmask = llt.allocate_token_bitmask(1, processor.llg_tokenizer.vocab_size)
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        with self._lock:
            cache, cached = self._prefix_start(ids, prefix)  # the scheduler copies the cache into the row's own
        yield from self.scheduler.submit(ids[cached:], cache, matcher, bitmask, int(max_new_tokens))

    @property
    def scheduler(self):
        """The batch every streamed llguidance generation joins, made on first use."""
        with self._cache_lock:
            if self._scheduler is None:
                from llmstruct.models.scheduler import StreamScheduler

                self._scheduler = StreamScheduler(self, max_batch=self.max_batch)
            return self._scheduler

    def load(self) -> dict[str, int]:
        return self._scheduler.load() if self._scheduler is not None else {"decoding": 0, "waiting": 0}

    def _set_threads(self) -> None:
        if self.threads > 0 and self._torch.get_num_threads() != self.threads:
            self._torch.set_num_threads(self.threads)

    def _locked_stream(self, prompt: str, schema: type[BaseModel], max_new_tokens: int, prefix: str) -> Iterator[str]:
        """One stream at a time under the model's lock (outlines_core: one grammar per call)."""
        pieces: queue.Queue = queue.Queue()
        done = object()
        failure: list[BaseException] = []
        cancel = threading.Event()  # set when the reader stops: the model is free for others at once

        def run() -> None:
            try:
                with self._lock:
                    if cancel.is_set():
                        return
                    self._set_threads()
                    ids = self.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)["input_ids"]
                    cache, _ = self._prefix_start(ids[0].tolist(), prefix)
                    cache = copy.deepcopy(cache)  # generate extends it in place
                    steps = self._generate_steps(ids, cache, schema, max_new_tokens, cancel)
                    try:
                        for piece in steps:
                            if cancel.is_set():
                                break
                            pieces.put(piece)
                    finally:
                        steps.close()
            except BaseException as e:  # surfaced in the caller's thread
                failure.append(e)
            finally:
                pieces.put(done)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            while True:
                try:
                    piece = pieces.get(timeout=STREAM_TIMEOUT_S)
                except queue.Empty:
                    raise ModelError(f"no output from the model for {STREAM_TIMEOUT_S} s") from None
                if piece is done:
                    break
                yield piece
        finally:
            cancel.set()
        worker.join()
        if failure:
            raise failure[0]

    def _generate_steps(self, ids, cache, schema: type[BaseModel], max_new_tokens: int,
                        cancel: threading.Event) -> Iterator[str]:
        """``model.generate`` with the grammar's logits processor, streamed (outlines_core,
        which has no fast-forward). ``ids``: the whole prompt; ``cache`` covers its start."""
        from transformers import (
            LogitsProcessorList,
            StoppingCriteria,
            StoppingCriteriaList,
            TextIteratorStreamer,
        )

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return cancel.is_set()

        torch = self._torch
        processor = self._generator(schema).logits_processor
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        processor.reset()
        kwargs: dict[str, Any] = {} if cache is None else {self._cache_kw: cache}
        failure: list[BaseException] = []

        def gen() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                        do_sample=False, eos_token_id=self.eos_token_ids, pad_token_id=self.pad_token_id,
                        logits_processor=LogitsProcessorList([processor]), streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([Cancelled()]), **kwargs,
                    )
            except BaseException as e:
                failure.append(e)
                streamer.end()

        worker = threading.Thread(target=gen, daemon=True)
        worker.start()
        try:
            yield from streamer
        finally:  # closed early: stop generating before the caller releases the lock
            cancel.set()
            worker.join()
        if failure:
            raise failure[0]

    def _prefix_start(self, ids: list[int], prefix: str) -> tuple[Any, int]:
        """(the prefilled cache of ``prefix``, its token count) when ``ids`` start with the
        prefix's tokens (the split falls on a token boundary) and something is left to feed;
        else (None, 0). The caller holds the lock; the cache is shared, never to be extended."""
        if not prefix:
            return None, 0
        head, prefilled = self._prefix_cache(prefix)
        if len(ids) > len(head) and ids[:len(head)] == head:
            self.prefix_reuses += 1
            return prefilled, len(head)
        return None, 0

    def _prefix_cache(self, prefix: str):
        """(token ids, key/value cache) of ``prefix``, computed once; the caller holds the lock
        and deep-copies the cache, since generation extends it in place."""
        hit = self._prefixes.pop(prefix, None)
        if hit is None:
            ids = self.tokenizer.encode(prefix, add_special_tokens=False)
            self._set_threads()
            with self._torch.inference_mode():
                out = self.model(input_ids=self._torch.tensor([ids], dtype=self._torch.long), use_cache=True,
                                 logits_to_keep=1)
                hit = (ids, getattr(out, self._cache_kw))
        self._prefixes[prefix] = hit
        while len(self._prefixes) > PREFIX_CACHE:
            self._prefixes.pop(next(iter(self._prefixes)))
        return hit

    def warm_up(self) -> None:
        """Convert the tokenizer for the grammar engine and run a short constrained
        generation, so the first real request does not pay for them: llguidance builds its
        token tables for string contents at the first mask that admits text (1.6 s here)."""
        if self.grammar == "llguidance":
            self.llguidance_backend()
        for _ in self.generate_json_stream(self.chat_prompt("", "你好"), _WarmUp, 12):
            pass

    # ------------------------------------------------------------------ core

    def _generate(self, prompts: list[str], max_new_tokens: int, processor) -> list[GenerationResult]:
        if isinstance(prompts, str):
            raise TypeError("prompts must be a list of strings")
        if not prompts:
            return []
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        torch = self._torch
        from transformers import LogitsProcessorList

        with self._lock:
            self._set_threads()
            enc = self.tokenizer(
                list(prompts), return_tensors="pt", padding=True, add_special_tokens=False
            )
            kwargs: dict[str, Any] = dict(
                max_new_tokens=int(max_new_tokens),
                do_sample=False,
                eos_token_id=self.eos_token_ids,
                pad_token_id=self.pad_token_id,
            )
            if processor is not None:
                processor.reset()
                kwargs["logits_processor"] = LogitsProcessorList([processor])
            t0 = time.perf_counter()
            with torch.inference_mode(), warnings.catch_warnings():
                # llguidance complains when finished rows of a batch keep receiving padding.
                warnings.filterwarnings("ignore", message="Error in LLMatcher")
                warnings.filterwarnings("ignore", message=".*generation flags are not valid.*")
                out = self.model.generate(**enc, **kwargs)
            seconds = time.perf_counter() - t0

        n_in = enc["input_ids"].shape[1]
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        eos = set(self.eos_token_ids)
        results: list[GenerationResult] = []
        for row, plen in zip(out[:, n_in:].tolist(), prompt_lens):
            stop = next((i for i, t in enumerate(row) if t in eos), None)
            if stop is None:
                ids, n_gen, truncated = row, len(row), True
            else:
                ids, n_gen, truncated = row[:stop], stop + 1, False
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            results.append(GenerationResult(text, int(plen), n_gen, seconds, truncated))
        return results

    def __repr__(self) -> str:
        return f"TransformersBackend(model_id={self.model_id!r}, grammar={self.grammar!r}, dtype={self.dtype!r}, threads={self.threads})"


class _WarmUp(BaseModel):
    text: str


class _RowGrammars:
    """A logits processor with its own llguidance grammar per batch row.

    outlines' processor applies one grammar to every row; items of a report have
    different output shapes (their list lengths are fixed to what rules found), and
    batching them together is where CPU throughput comes from.
    """

    def __init__(self, processors: list[Any], eos_token_ids: list[int]):
        self.grammars = [p.grammar for p in processors]
        self.llg_tokenizer = processors[0].llg_tokenizer
        self.eos_token_ids = eos_token_ids
        self.reset()

    def reset(self) -> None:
        self._matchers: list[Any] | None = None

    def __call__(self, input_ids, scores):
        import llguidance.torch as llt
        from llguidance import LLMatcher

        if self._matchers is None:
            self._matchers = [LLMatcher(self.llg_tokenizer, g) for g in self.grammars]
            self._bitmask = llt.allocate_token_bitmask(len(self.grammars), self.llg_tokenizer.vocab_size)
        else:
            last = input_ids[:, -1].tolist()
            for m, tok in zip(self._matchers, last):
                if not m.is_stopped() and not m.get_error():
                    m.consume_token(tok)
        done = []
        for i, m in enumerate(self._matchers):
            if m.is_stopped() or m.get_error():
                self._bitmask[i].fill_(-1)
                done.append(i)
            else:
                llt.fill_next_token_bitmask(m, self._bitmask, i)
        llt.apply_token_bitmask_inplace(scores, self._bitmask)
        for i in done:  # a complete grammar admits only the end of the sequence
            keep = scores[i, self.eos_token_ids].clone()
            scores[i].fill_(float("-inf"))
            scores[i, self.eos_token_ids] = keep
        return scores
