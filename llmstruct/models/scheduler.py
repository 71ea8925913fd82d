"""Continuous batching of streamed, grammar-constrained generations on one local model.

The chat's questions arrive one by one from many sessions. On CPU a forward pass over the
tokens of eight rows costs little more than over one row's (decode is memory bound), so
concurrent streams share forward passes: each step packs, into one sequence, the next chunk
of a newcomer's prompt (chunked prefill, so rows already answering are held up by one chunk
at most) and the pending tokens of every row being decoded. A row joins at a step boundary
once its prompt is in, and leaves at once when it ends or its reader goes away. Every row
keeps its own llguidance matcher, so each is decoded under its own grammar, greedily, and
the tokens the grammar forces (JSON keys, the rest of a chosen quote) go in its next step.

Each row keeps its own key/value cache; attention is computed row by row over that cache
(:func:`rows_attention`), and the linear layers treat every token alone (row-independent on
CPU), so a row does the same arithmetic whatever else is in the step: greedy answers under
batching are the answers alone (a test compares them). No padding is ever computed.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from llmstruct.models.base import Waiting
from llmstruct.models.provision import ModelError

MAX_BATCH = 8
PREFILL_CHUNK = 512  # tokens: a 1,000-token prompt in 2 passes; a running row waits ≈ 0.8 s per chunk
HEARTBEAT_S = 1.0
STREAM_TIMEOUT_S = 300


@dataclass(eq=False)
class _Row:
    """One streamed generation: its grammar, what is still to be fed, what it produced."""

    feed: list[int]  # prompt tokens not in ``cache`` yet, then tokens chosen but not yet fed
    cache: Any  # given: a prefilled prefix's DynamicCache (read, never changed); then the row's _RowCache
    matcher: Any
    max_new_tokens: int
    pieces: queue.Queue = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    out: list[int] = field(default_factory=list)
    shown: str = ""
    real: int = 0  # tokens in the row's cache (its next position id)
    submitted: float = field(default_factory=time.perf_counter)
    started: float | None = None
    bitmask: Any = None
    stats: dict = field(default_factory=lambda: {"forward_passes": 0, "tokens": 0, "forced_tokens": 0})


_DONE = object()


class StreamScheduler:
    """Runs every streamed generation of one :class:`TransformersBackend` in one worker
    thread, as rows of one batch. ``submit`` returns an iterator of text pieces."""

    def __init__(self, backend, max_batch: int = MAX_BATCH, prefill_chunk: int = PREFILL_CHUNK):
        self.backend = backend
        self.max_batch = max(1, int(max_batch))
        self.prefill_chunk = max(16, int(prefill_chunk))
        self._inbox: queue.Queue[_Row] = queue.Queue()
        self._waiting: list[_Row] = []  # submitted, not yet prefilled (FIFO)
        self._prefilling: _Row | None = None
        self._batch: list[_Row] = []
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.steps = 0  # batched decode steps run (tests and bench read these)
        self.max_rows_seen = 0
        self.cancelled = 0  # rows dropped because their reader went away
        self.timings = {"prefill_seconds": 0.0, "prefill_tokens": 0, "step_seconds": 0.0, "step_rows": 0}
        use_rows_attention(backend.model)

    # ------------------------------------------------------------------ callers' side

    def submit(self, ids: list[int], cache: Any, matcher: Any, bitmask: Any, max_new_tokens: int) -> Iterator[str]:
        """Queue one generation; yield its text pieces, and :class:`Waiting` notes (empty
        strings) about once a second until its first piece, so a page can say why it waits.

        ``ids``: prompt tokens not in ``cache`` (None: an empty cache); ``matcher``: a fresh
        llguidance matcher of the row's grammar; ``bitmask``: a one-row token bitmask for it.
        """
        row = _Row(feed=list(ids), cache=cache, matcher=matcher, bitmask=bitmask, max_new_tokens=int(max_new_tokens))
        self._ensure_worker()
        self._inbox.put(row)
        last_piece = time.perf_counter()
        try:
            while True:
                try:
                    piece = row.pieces.get(timeout=HEARTBEAT_S)
                except queue.Empty:
                    now = time.perf_counter()
                    if now - last_piece > STREAM_TIMEOUT_S:
                        raise ModelError(f"no output from the model for {STREAM_TIMEOUT_S} s") from None
                    if not row.shown:
                        yield Waiting(self.position(row), now - row.submitted, row.started is not None)
                    continue
                if piece is _DONE:
                    break
                if isinstance(piece, BaseException):
                    raise piece
                last_piece = time.perf_counter()
                yield piece
        finally:
            row.cancel.set()  # a reader that stops frees its row at the next step
            self.backend.last_stream = dict(row.stats)

    def position(self, row: _Row) -> int:
        """Requests ahead of ``row`` that wait for the model (0 once it is being served)."""
        if row.started is not None:
            return 0
        waiting = [r for r in list(self._waiting) if not r.cancel.is_set()]
        return waiting.index(row) if row in waiting else self._inbox.qsize()

    def load(self) -> dict:
        """Rows decoding and requests waiting now, and rows cancelled so far (status, tests)."""
        return {"decoding": len(self._batch), "waiting": len(self._waiting) + self._inbox.qsize()
                + (self._prefilling is not None), "cancelled": self.cancelled}

    def _ensure_worker(self) -> None:
        with self._start_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="llmstruct-scheduler", daemon=True)
                self._worker.start()

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            idle = not self._batch and self._prefilling is None and not self._waiting
            try:
                self._waiting.append(self._inbox.get(timeout=None if idle else 0))
            except queue.Empty:
                pass
            while not self._inbox.empty():
                self._waiting.append(self._inbox.get_nowait())
            self._waiting = [r for r in self._waiting if not self._finish_if_cancelled(r)]
            try:
                with self.backend._lock, self.backend._torch.inference_mode():
                    self.backend._set_threads()
                    self._admit()
                    if self._batch or self._prefilling is not None:
                        self._step()
            except BaseException as exc:  # every row in flight learns of it; the worker goes on
                for r in self._batch + ([self._prefilling] if self._prefilling else []):
                    r.pieces.put(exc if isinstance(exc, Exception) else ModelError(str(exc)))
                    r.pieces.put(_DONE)
                self._batch, self._prefilling = [], None

    def _finish_if_cancelled(self, row: _Row) -> bool:
        if row.cancel.is_set():
            self._drop(row)
            return True
        return False

    def _drop(self, row: _Row) -> None:
        """A row whose reader went away: its place is free at once."""
        self.cancelled += 1
        row.cache = None
        row.pieces.put(_DONE)

    def _admit(self) -> None:
        """Start the next waiting request's prefill when there is room in the batch."""
        if self._prefilling is not None and self._finish_if_cancelled(self._prefilling):
            self._prefilling = None
        if self._prefilling is not None or not self._waiting or len(self._batch) >= self.max_batch:
            return
        row = self._waiting.pop(0)
        row.started = time.perf_counter()
        forced = self._take_forced(row, row.max_new_tokens)  # the output's forced start goes with the prompt
        row.feed += forced
        row.out += forced
        row.cache = _RowCache(row.cache, self.backend.model.config.num_hidden_layers, len(row.feed) + row.max_new_tokens)
        row.real = row.cache.length
        if not row.feed:
            raise ModelError("nothing to prefill: the prompt is all in the cache")
        self._prefilling = row

    def _step(self) -> None:
        """One forward pass over the prefilling row's next chunk and every decoding row's
        pending tokens, packed into one sequence."""
        torch = self.backend._torch
        segments: list[tuple[_Row, list[int]]] = []
        pre = self._prefilling
        if pre is not None:
            chunk, pre.feed = pre.feed[:self.prefill_chunk], pre.feed[self.prefill_chunk:]
            segments.append((pre, chunk))
        rows = [r for r in self._batch if not self._finish_if_cancelled(r)]
        segments += [(r, r.feed) for r in rows]
        if not segments:
            self._batch = []
            return
        ids, pos, layout, last = [], [], [], []
        for r, toks in segments:
            layout.append((r.cache, len(ids), len(toks)))
            ids += toks
            pos += range(r.real, r.real + len(toks))
            last.append(len(ids) - 1)
        t0 = time.perf_counter()
        with _layout(layout):
            out = self.backend.model(input_ids=torch.tensor([ids], dtype=torch.long),
                                     position_ids=torch.tensor([pos], dtype=torch.long),
                                     **{self.backend._cache_kw: _packed_cache_class()(layout)}, use_cache=True,
                                     logits_to_keep=torch.tensor(last, dtype=torch.long))
        seconds = time.perf_counter() - t0
        logits = out.logits[0]
        if pre is not None:
            self.timings["prefill_seconds"] += seconds
            self.timings["prefill_tokens"] += len(segments[0][1])
        if rows:
            self.steps += 1
            self.timings["step_seconds"] += seconds
            self.timings["step_rows"] += len(rows)
        keep = []
        for j, (r, toks) in enumerate(segments):
            r.real += len(toks)
            r.stats["forward_passes"] += 1
            if r is pre:
                if r.feed:
                    continue  # more of its prompt next step
                self._prefilling = None
            r.feed = []
            if self._choose(r, logits[j]):
                keep.append(r)
        self._batch = keep
        self.max_rows_seen = max(self.max_rows_seen, len(keep))

    def _choose(self, row: _Row, logits) -> bool:
        """Pick the row's next token under its grammar, queue it (and what the grammar then
        forces) to be fed, emit new text. False when the row has finished."""
        import llguidance.torch as llt

        torch = self.backend._torch
        if row.cancel.is_set():
            self._drop(row)
            return False
        if len(row.out) >= row.max_new_tokens:
            return self._end(row, truncated=True)
        llt.fill_next_token_bitmask(row.matcher, row.bitmask, 0)
        logits = logits.clone()
        llt.apply_token_bitmask_inplace(logits, row.bitmask[0])
        tok = int(torch.argmax(logits))
        if tok in self.backend.eos_token_ids:
            return self._end(row, truncated=False)
        if not row.matcher.consume_token(tok):
            raise ModelError(f"grammar rejected a token it admitted: {row.matcher.get_error()}")
        new = [tok] + ([] if row.matcher.is_stopped() else self._take_forced(row, row.max_new_tokens - len(row.out) - 1))
        row.out += new
        row.feed = new
        row.stats["tokens"] = len(row.out)
        text = self.backend.tokenizer.decode(row.out, skip_special_tokens=True)
        if not text.endswith("\ufffd") and len(text) > len(row.shown):  # a character split across tokens waits
            row.pieces.put(text[len(row.shown):])
            row.shown = text
        if row.matcher.is_stopped():
            return self._end(row, truncated=False)
        if len(row.out) >= row.max_new_tokens:
            return self._end(row, truncated=True)
        return True

    def _end(self, row: _Row, truncated: bool) -> bool:
        row.stats["tokens"] = len(row.out)
        row.stats["truncated"] = int(truncated or not row.matcher.is_stopped())
        text = self.backend.tokenizer.decode(row.out, skip_special_tokens=True)
        if len(text) > len(row.shown):
            row.pieces.put(text[len(row.shown):])
            row.shown = text
        row.pieces.put(_DONE)
        row.cache = None
        return False

    def _take_forced(self, row: _Row, limit: int) -> list[int]:
        forced = row.matcher.compute_ff_tokens()[:max(0, limit)]
        if forced and not row.matcher.consume_tokens(forced):
            raise ModelError(f"grammar rejected its own forced tokens: {row.matcher.get_error()}")
        row.stats["forced_tokens"] += len(forced)
        return forced


# ---------------------------------------------------------------------- per-row attention

ATTENTION = "llmstruct_rows"
_current: list | None = None  # the running step's rows: (own cache, first token, tokens); under the model's lock


class _layout:
    """Within this block the model's attention runs row by row on each row's own cache."""

    def __init__(self, rows: list):
        self.rows = rows

    def __enter__(self):
        global _current
        _current = self.rows

    def __exit__(self, *exc):
        global _current
        _current = None


class _RowCache:
    """A row's keys and values per layer in buffers that grow by doubling: a step writes its
    new tokens in place, where a DynamicCache would copy the whole cache to append them."""

    def __init__(self, start: Any, layers: int, room: int):
        self.length = start.get_seq_length() if start is not None else 0
        self.keys: list[Any] = [None] * layers
        self.values: list[Any] = [None] * layers
        self.room = self.length + max(16, room)
        if start is not None:
            for i, layer in enumerate(start.layers):
                self.keys[i], self.values[i] = self._buffer(layer.keys), self._buffer(layer.values)

    def _buffer(self, t):
        shape = list(t.shape)
        shape[2] = self.room
        buf = t.new_empty(shape)
        buf[:, :, :t.shape[2]] = t
        return buf

    def update(self, layer: int, keys, values) -> None:
        n = keys.shape[2]
        start = self.length
        if self.keys[layer] is None:
            self.keys[layer] = self._buffer(keys[:, :, :0])
            self.values[layer] = self._buffer(values[:, :, :0])
        if start + n > self.keys[layer].shape[2]:
            self.room = 2 * (start + n)
            self.keys[layer] = self._buffer(self.keys[layer][:, :, :start])
            self.values[layer] = self._buffer(self.values[layer][:, :, :start])
        self.keys[layer][:, :, start:start + n] = keys
        self.values[layer][:, :, start:start + n] = values
        if layer == len(self.keys) - 1:
            self.length += n

    def view(self, layer: int, new: int):
        """Keys and values of ``layer`` up to the tokens being fed (``new`` of them, written)."""
        end = self.length + (0 if layer == len(self.keys) - 1 else new)
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


@functools.cache
def _packed_cache_class():
    """The class is made on first use: transformers is imported only when a model is built."""
    from transformers import DynamicCache

    class PackedCache(DynamicCache):
        """What the model sees as its cache in a packed step: new keys and values are
        split by row and written to each row's own cache."""

        def __init__(self, rows: list):
            super().__init__()
            self.rows = rows

        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            for cache, start, n in self.rows:
                cache.update(layer_idx, key_states[:, :, start:start + n], value_states[:, :, start:start + n])
            return key_states, value_states  # rows_attention reads the rows' caches instead

    return PackedCache


def rows_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                   is_causal: bool | None = None, **kwargs):
    """Attention of each row's tokens over the row's own cache; outside a step, plain SDPA.

    ``query`` is ``[1, heads, tokens, dim]``, the rows' tokens one after another; a row's
    new tokens are the last of its cache, so its causal mask is the lower triangle aligned
    right.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows = _current
    if rows is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    out = torch.empty_like(query)
    layer = module.layer_idx
    heads, kv_heads = query.shape[1], key.shape[1]
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for cache, start, n in rows:
        k, v = cache.view(layer, n)
        q = query[:, :, start:start + n]
        if n == 1:  # the query heads that share a key head become its queries (as transformers does)
            packed = q.reshape(1, kv_heads, heads // kv_heads, q.shape[-1])
            out[:, :, start] = sdpa(packed, k, v, scale=scaling).reshape(1, heads, q.shape[-1])
        else:
            total = k.shape[2]
            mask = torch.ones(n, total, dtype=torch.bool).tril(diagonal=total - n)
            out[:, :, start:start + n] = sdpa(q, k, v, attn_mask=mask, scale=scaling, enable_gqa=heads != kv_heads)
    return out.transpose(1, 2).contiguous(), None


def _rows_mask(*args, **kwargs):
    """No mask in a packed step (rows_attention makes its own); SDPA's mask outside one."""
    from transformers.masking_utils import sdpa_mask

    return None if _current is not None else sdpa_mask(*args, **kwargs)


def use_rows_attention(model) -> None:
    """Switch ``model`` to :func:`rows_attention` (plain SDPA, masks and all, outside steps)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(ATTENTION, rows_attention)
    AttentionMaskInterface.register(ATTENTION, _rows_mask)
    if getattr(model.config, "_attn_implementation", None) != ATTENTION:
        model.set_attn_implementation(ATTENTION)
