"""Continuous batching for short generations: retire a row the step it ends, refill freed slots from a queue,
and prefill each refill group's shared prompt prefix once. Why: a ``model.generate`` batch runs until its longest
row stops (~40% of decode slots were padding) and re-encodes the chat template and instructions for every row.

Rows keep their own ``position_ids`` and a 2-D mask over the cache's columns, so they may sit at different
positions; caches that are not plain full attention fall back to ``model.generate``. One seeded generator per
call and a schedule that depends only on the prompts make the output depend only on prompts and seed."""

from __future__ import annotations

import contextlib
import inspect
import os
import time
from collections import deque
from collections.abc import Sequence

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

from .generation import BatchOutput, Sampling, ends_example, format_prompts, newline_token_ids

NUCLEUS_CANDIDATES = (1024, 8192)  # candidate set sizes tried before the full vocabulary (see sample_next)
# One more prefill group (a prefix call + a tail call) costs about as much as encoding this many more tokens:
# SmolLM2-135M bf16 on 2 AMX cores, a forward call costs ~35 ms + 0.35 ms a token (+ ~25 ms for oneDNN to build the
# kernels of a new shape), so a group ~ 200-300 tokens; fp32 on AVX2 ~4x more a token, ~60. 16 (the old value)
# cut 256 recipe prompts into 20 groups, 128 into 7, and ran 5-10% faster.
PREFILL_CALL_COST = 128
# Decode steps run on a multiple of this many rows (the extra rows are free slots, their outputs dropped): oneDNN
# builds a matmul kernel per new row count (1.5-4 ms each, ~5 shapes per step on a 2-core AMX CPU, 0.3 ms to run
# one), and rows retire at almost every step, so without buckets most steps paid that instead of reusing one.
ROW_BUCKET = 16


def supports_continuous_batching(model, span: int | None = None) -> bool:
    """True when the model's default cache is full-attention ``DynamicLayer`` s and its forward takes
    ``position_ids`` and ``logits_to_keep`` (decoder-only transformers in transformers >= 5). Sliding-window layers
    (Gemma 3, Mistral) count as full attention when every row's tokens fit in the window: ``span`` (longest
    prompt + max new tokens) shorter than it, so no token a row attends to ever leaves the window."""
    params = inspect.signature(model.forward).parameters
    if not {"position_ids", "logits_to_keep"} <= set(params) or _cache_kwarg(model) is None:
        return False
    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # noqa: BLE001 - an exotic config: take the safe path
        return False

    def full_attention(layer) -> bool:
        if type(layer) is DynamicSlidingWindowLayer:
            return span is not None and span < layer.sliding_window
        return type(layer) is DynamicLayer

    return bool(cache.layers) and all(full_attention(layer) for layer in cache.layers)


def _cache_kwarg(model) -> str | None:
    params = inspect.signature(model.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in params), None)


class _Window:
    """What every :class:`_SlotLayer` shares: active rows ``[0, rows)`` and columns ``[start, end)``."""

    def __init__(self):
        self.rows = self.start = self.end = 0


def _window_view(buffer: str) -> property:
    """The active part of a buffer; assigning is a no-op (the buffers are the state; DynamicLayer assigns None)."""

    def get(self):
        w = self.window
        return getattr(self, buffer)[: w.rows, :, w.start : w.end]

    return property(get, lambda self, value: None)


class _SlotLayer(DynamicLayer):
    """One layer's keys/values in preallocated ``(slots, heads, capacity, head_dim)`` buffers: a decode step writes
    one column in place instead of re-concatenating the whole cache (as ``DynamicLayer`` does every step)."""

    def __init__(self, window: _Window, keys: torch.Tensor, values: torch.Tensor):
        self.window, self.key_buffer, self.value_buffer = window, keys, values
        super().__init__()  # its `keys = values = None` go to the no-op setters below
        self.is_initialized, self.device = True, keys.device

    keys = _window_view("key_buffer")
    values = _window_view("value_buffer")

    def update(self, key_states, value_states, *args, **kwargs):
        w, q = self.window, key_states.shape[-2]
        self.key_buffer[: w.rows, :, w.end : w.end + q] = key_states
        self.value_buffer[: w.rows, :, w.end : w.end + q] = value_states
        return self.key_buffer[: w.rows, :, w.start : w.end + q], self.value_buffer[: w.rows, :, w.start : w.end + q]

    def get_seq_length(self) -> int:
        return self.window.end - self.window.start


class _Batch:
    """The decoding rows: prompt index, next position and generated ids per row, and a slot cache whose column
    mask marks, per row, which cached columns are its tokens (zeros for padding before or inside a prompt)."""

    def __init__(self, model, device, slots: int, max_new_tokens: int, longest_prompt: int | None = None):
        """``longest_prompt``: given when every prompt has a slot from the start (one wave): the window then never
        outgrows it + ``max_new_tokens``, so the buffers get no spare columns -- their first touch is a large part
        of a run (~1.6 s per GB, 2 cores) -- and every group ends at its column, so the window never moves."""
        self.model, self.device, self.slots, self.longest_prompt = model, device, slots, longest_prompt
        self.cache_kwarg = _cache_kwarg(model)
        self.new_cache = lambda: DynamicCache(config=model.config)
        self.window = _Window()
        self.cache = None  # a DynamicCache whose layers are _SlotLayers, built on the first prefill
        self.max_new_tokens = max_new_tokens
        self.mask: torch.Tensor | None = None  # (slots, capacity): 1 where a row's token is cached
        self.positions = torch.zeros(slots, dtype=torch.long, device=device)
        self.logits: torch.Tensor | None = None  # next-token logits per active row
        self.rows: list[int] = []
        self.generated: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def _forward(self, input_ids, attention_mask, position_ids, cache):
        kwargs = {self.cache_kwarg: cache, "use_cache": True, "logits_to_keep": 1}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        return out.logits[:, -1]  # in the model's dtype: sample_next upcasts only the candidates it keeps

    def add(self, rows: Sequence[int], prompt_ids: Sequence[Sequence[int]], pad_id: int) -> None:
        """Prefill ``rows``: their common prefix once, then the rest of each prompt, and copy them into free slots."""
        prefix_len = len(os.path.commonprefix([list(ids) for ids in prompt_ids]))
        prefix_len = min(prefix_len, min(len(ids) for ids in prompt_ids) - 1)  # every row keeps >= 1 own token
        cache = self.new_cache()
        n = len(rows)
        if prefix_len > 0:
            prefix = torch.tensor([list(prompt_ids[0][:prefix_len])], device=self.device)
            self._forward(prefix, None, torch.arange(prefix_len, device=self.device)[None], cache)
            for layer in cache.layers:  # broadcast the prefix to every row of the group
                layer.keys = layer.keys.expand(n, -1, -1, -1)
                layer.values = layer.values.expand(n, -1, -1, -1)
        tails = [list(ids[prefix_len:]) for ids in prompt_ids]
        width = max(len(t) for t in tails)
        tail_ids = torch.tensor([[pad_id] * (width - len(t)) + t for t in tails], device=self.device)
        tail_mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in tails], device=self.device)
        mask = torch.cat([torch.ones(n, prefix_len, dtype=torch.long, device=self.device), tail_mask], dim=1)
        position_ids = prefix_len + (tail_mask.cumsum(-1) - 1).clamp(min=0)
        logits = self._forward(tail_ids, mask, position_ids, cache)
        self._insert(cache, mask)
        first = len(self.rows)
        self.positions[first : first + n] = prefix_len + tail_mask.sum(-1)
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])
        self.rows.extend(rows)
        self.generated.extend([] for _ in rows)

    def _insert(self, cache, mask: torch.Tensor) -> None:
        """Copy a prefilled group into slots ``[rows, rows + n)``, its last column aligned with the window's end."""
        w, (n, width) = self.window, mask.shape
        if self.cache is None:  # refills: room for 2 * (width + max_new_tokens), the window moves every ~width steps
            keys = cache.layers[0].keys
            one_wave = self.longest_prompt is not None
            capacity = self.longest_prompt + self.max_new_tokens + 1 if one_wave else 2 * (width + self.max_new_tokens)
            shape = (self.slots, keys.shape[1], capacity, keys.shape[3])
            self.cache = self.new_cache()
            layers = [_SlotLayer(self.window, keys.new_zeros(shape), keys.new_zeros(shape)) for _ in self.cache.layers]
            self.cache.layers = layers
            self.mask = torch.zeros(self.slots, capacity, dtype=torch.long, device=self.device)
        if not w.rows:
            w.start = w.end = self.longest_prompt or 0
        self._make_room(1, left=width - (w.end - w.start))
        first, cols = w.rows, slice(w.end - width, w.end)
        self.mask[first : first + n] = 0
        self.mask[first : first + n, cols] = mask
        for slot, layer in zip(self.cache.layers, cache.layers):
            slot.key_buffer[first : first + n, :, cols] = layer.keys
            slot.value_buffer[first : first + n, :, cols] = layer.values
        w.rows += n
        w.start = min(w.start, w.end - width)

    def _make_room(self, right: int, left: int = 0) -> None:
        """Ensure ``left`` free columns before the window and ``right`` after it: move the window (rarely) or grow
        the buffers."""
        w, capacity, rows = self.window, self.mask.shape[1], self.window.rows
        left, width = max(left, 0), w.end - w.start
        if w.start >= left and w.end + right <= capacity:
            return
        needed = left + width + right
        capacity = max(2 * capacity, needed) if needed > capacity else capacity  # grow: new, larger buffers
        for layer in self.cache.layers:
            for name in ("key_buffer", "value_buffer"):
                old = getattr(layer, name)
                new = old.new_zeros(old.shape[:2] + (capacity,) + old.shape[3:]) if capacity != old.shape[2] else old
                new[:rows, :, left : left + width] = old[:rows, :, w.start : w.end].clone()
                setattr(layer, name, new)
        mask = self.mask.new_zeros(self.slots, capacity) if capacity != self.mask.shape[1] else self.mask
        window = self.mask[:rows, w.start : w.end].clone()
        mask[:rows] = 0
        mask[:rows, left : left + width] = window
        self.mask = mask
        w.start, w.end = left, left + width

    def keep(self, keep: list[int]) -> None:
        """Retire every row not in ``keep`` (indices into the current rows): the last kept rows move into the
        freed slots, so only they are copied; then columns no row uses leave the window."""
        w, n = self.window, len(keep)
        kept = set(keep)
        holes = [j for j in range(n) if j not in kept]
        movers = [j for j in keep if j >= n]
        order = list(range(len(self.rows)))
        for hole, mover in zip(holes, movers):
            order[hole] = mover
        order = order[:n]
        self.rows = [self.rows[j] for j in order]
        self.generated = [self.generated[j] for j in order]
        self.logits = self.logits[torch.tensor(order, dtype=torch.long, device=self.device)]
        if holes:
            src = torch.tensor(movers, dtype=torch.long, device=self.device)
            dst = torch.tensor(holes, dtype=torch.long, device=self.device)
            self.positions[dst] = self.positions[src]
            self.mask[dst] = self.mask[src]
            for layer in self.cache.layers:
                layer.key_buffer[dst, :, w.start : w.end] = layer.key_buffer[src, :, w.start : w.end]
                layer.value_buffer[dst, :, w.start : w.end] = layer.value_buffer[src, :, w.start : w.end]
        w.rows = n
        self.order = order
        if n:
            used = self.mask[:n, w.start : w.end].any(0).nonzero()
            w.start += int(used[0]) if len(used) else w.end - w.start
        else:
            w.start = w.end = 0

    def step(self, tokens: torch.Tensor) -> None:
        """Feed one sampled token per row; ``self.logits`` becomes the next step's. The forward runs on the rows
        rounded up to :data:`ROW_BUCKET` slots: the free slots past the rows compute from stale cache columns (each
        attends at least to its own new one, so nothing is NaN) and are dropped; rows never mix in a forward."""
        self._make_room(1)
        w, n = self.window, len(self.rows)
        m = min(self.slots, -(-n // ROW_BUCKET) * ROW_BUCKET)
        if m > n:
            tokens = torch.cat([tokens, tokens.new_zeros(m - n)])
        self.mask[:m, w.end] = 1
        w.rows = m  # the slot layers write (and read) m rows this step
        try:
            logits = self._forward(
                tokens[:, None], self.mask[:m, w.start : w.end + 1], self.positions[:m, None], self.cache
            )
        finally:
            w.rows = n
        self.logits = logits[:n]
        w.end += 1
        self.positions[:n] += 1


def sample_next(
    logits: torch.Tensor, *, temperature: float, top_p: float, top_k: int | None, generator, do_sample: bool
) -> torch.Tensor:
    """One token per row: greedy, or temperature + optional top-k + exact nucleus sampling. The vocabulary is not
    sorted (that cost more than a decode step on 2 CPU cores): the nucleus is solved in the top ``k`` candidates
    of the rows whose candidates hold ``top_p`` of the mass, ``k`` growing only for rows that need it. With top-k
    the candidates are the top-k *logits* (the same tokens as the top-k probabilities) and only they are
    normalised: no softmax over the vocabulary (256 rows x 49k: 1.8 of 17.6 s of a SmolLM2 run)."""
    if not do_sample:
        return logits.argmax(-1)
    vocab = logits.shape[-1]
    if top_k:  # top-k first, then the nucleus within it (renormalised), as transformers' warpers do
        values, indices = logits.topk(min(top_k, vocab), dim=-1)
        return _sample_nucleus((values.float() / temperature).softmax(-1), indices, top_p, generator)
    probs = (logits.float() / temperature).softmax(-1)
    tiers = [min(k, vocab) for k in NUCLEUS_CANDIDATES] + [vocab]
    tokens = torch.empty(len(probs), dtype=torch.long, device=probs.device)
    todo = torch.arange(len(probs), device=probs.device)
    for k in dict.fromkeys(tiers):  # ascending, no repeats
        values, indices = probs[todo].topk(k, dim=-1)
        ok = (values.sum(-1) >= top_p) | (k == tiers[-1])
        tokens[todo[ok]] = _sample_nucleus(values[ok], indices[ok], top_p, generator)
        todo = todo[~ok]
        if not len(todo):
            break
    return tokens


def _sample_nucleus(values: torch.Tensor, indices: torch.Tensor, top_p: float, generator) -> torch.Tensor:
    """One of ``indices`` per row, drawn from the descending probabilities ``values`` cut to their top-p nucleus."""
    before = values.cumsum(-1) - values  # mass of the better tokens
    choice = torch.multinomial(values.masked_fill(before >= top_p, 0.0), 1, generator=generator)
    return indices.gather(-1, choice).squeeze(-1)


def prefix_groups(prompt_ids: Sequence[Sequence[int]], overhead: int = PREFILL_CALL_COST) -> list[range]:
    """Split sorted prompts into consecutive groups, each prefilled as its shared prefix (once) plus the rows'
    own tokens padded to the group's longest, minimising the tokens encoded + ``overhead`` per group (dynamic
    programming, O(n^2)). Padding counts: it is computed like any token."""
    n = len(prompt_ids)
    lcp = [len(os.path.commonprefix([list(prompt_ids[i]), list(prompt_ids[i + 1])])) for i in range(n - 1)]
    best = [0.0] + [float("inf")] * n  # best[b]: cost of prompts[:b]
    cut = [0] * (n + 1)
    for b in range(1, n + 1):
        prefix, shortest, longest = None, None, 0
        for a in range(b - 1, -1, -1):  # group = prompts[a:b]
            length = len(prompt_ids[a])
            longest = max(longest, length)
            shortest = length if shortest is None else min(shortest, length)
            prefix = shortest - 1 if a == b - 1 else min(prefix, lcp[a])
            shared = max(0, min(prefix, shortest - 1))
            cost = best[a] + shared + (longest - shared) * (b - a) + overhead
            if cost < best[b]:
                best[b], cut[b] = cost, a
    groups, b = [], n
    while b:
        groups.append(range(cut[b], b))
        b = cut[b]
    return groups[::-1]


@contextlib.contextmanager
def _grouped_query_sdpa(device: torch.device):
    """On CPU, let SDPA take grouped-query attention with a mask itself (``enable_gqa``) through transformers' own
    switch, ``TRANSFORMERS_SDPA_FORCE_GQA`` (read at every call): a SmolLM2-135M decode step at 256 rows took
    186 ms instead of 258 ms with transformers' default for masked attention (the query packed per key head), 2 AMX
    cores. Not on CUDA, where a mask with GQA falls back to SDPA's math kernel."""
    name = "TRANSFORMERS_SDPA_FORCE_GQA"
    if torch.device(device).type != "cpu" or name in os.environ:
        yield
        return
    os.environ[name] = "1"
    try:
        yield
    finally:
        os.environ.pop(name, None)


@torch.inference_mode()
def generate_continuous(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    seed: int,
    batch_size: int = 64,
    refill_fraction: float = 0.25,
    **sampling,
) -> BatchOutput:
    """One continuation per prompt (new text only, in prompt order; ``sampling``: :class:`.Sampling`), at most
    ``batch_size`` rows decoding at once. Freed slots are refilled once ``refill_fraction`` of them are free, so a
    group amortises its prefix prefill and cache merge."""
    opts = Sampling(**sampling)
    max_new_tokens, top_k = opts.max_new_tokens, opts.top_k
    if not prompts:
        return BatchOutput([], [], 0.0)
    inputs, add_special_tokens = format_prompts(tokenizer, prompts)
    prompt_ids = [tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"] for text in inputs]
    device = next(model.parameters()).device
    defaults = getattr(model, "generation_config", None)  # as model.generate: eos ids and top_k from here too
    eos_ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(defaults, "eos_token_id", None)):
        eos_ids.update([value] if isinstance(value, int) else value or ())
    pad_id = tokenizer.pad_token_id
    suppress = [pad_id] if pad_id is not None and pad_id not in eos_ids else []
    newline_ids = torch.tensor(newline_token_ids(tokenizer) if opts.stop_at_newline else [], dtype=torch.long)
    newline_set = set(newline_ids.tolist())
    if top_k is None:
        top_k = getattr(defaults, "top_k", None)
    generator = torch.Generator(device=device).manual_seed(seed)

    # sorted prompts: neighbours (one refill group) share the template's words, so their common prefix is long
    queue = deque(sorted(range(len(prompts)), key=lambda i: prompt_ids[i]))
    refill_at = max(1, int(batch_size * refill_fraction))
    texts: list[str | None] = [None] * len(prompts)
    counts = [0] * len(prompts)
    one_wave = len(prompts) <= batch_size
    batch = _Batch(model, device, min(batch_size, len(prompts)), max_new_tokens,
                   longest_prompt=max(map(len, prompt_ids)) if one_wave else None)  # fmt: skip
    start = time.perf_counter()
    with _grouped_query_sdpa(device):
        while queue or len(batch):
            free = batch.slots - len(batch)
            if queue and (free >= refill_at or not len(batch)):
                group = [queue.popleft() for _ in range(min(free, len(queue)))]
                for part in prefix_groups([prompt_ids[i] for i in group]):
                    rows = [group[i] for i in part]
                    batch.add(rows, [prompt_ids[i] for i in rows], pad_id if pad_id is not None else 0)
            logits = batch.logits
            if suppress:
                logits[:, suppress] = float("-inf")
            fresh = [j for j, ids in enumerate(batch.generated) if not ids]
            if fresh and len(newline_ids):
                logits[torch.tensor(fresh)[:, None], newline_ids[None]] = float("-inf")  # no empty first line
            tokens = sample_next(logits, temperature=opts.temperature, top_p=opts.top_p, top_k=top_k,
                                 generator=generator, do_sample=opts.do_sample)  # fmt: skip
            keep = []
            for j, token in enumerate(tokens.tolist()):
                ids = batch.generated[j]
                ids.append(token)
                done = token in eos_ids or len(ids) >= max_new_tokens
                if not done and token in newline_set:
                    done = ends_example(tokenizer.decode(ids, skip_special_tokens=True))
                if done:
                    row = batch.rows[j]
                    texts[row] = tokenizer.decode(ids, skip_special_tokens=True)
                    counts[row] = len(ids)
                else:
                    keep.append(j)
            if len(keep) < len(batch):
                batch.keep(keep)
                tokens = tokens[torch.tensor(batch.order, dtype=torch.long, device=tokens.device)]
            if len(batch):
                batch.step(tokens)
    return BatchOutput(texts, counts, time.perf_counter() - start)
