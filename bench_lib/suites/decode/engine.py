"""Prefill and decode of one served model, as a serving engine runs them.

Static buffers throughout (gpt-fast's recipe): the KV cache holds prompt + generated positions,
the next token and its position live in device tensors that the step updates itself, so a
decode step has one shape and, in `graphs` mode, is one CUDA graph replay with no host work
between tokens. The blocks are compiled regionally (`nn.Module.compile` on each block: the
32 identical blocks of an 8B model compile once), in `compile` and `graphs` modes.

A timed decode call is one step (one token for each row of the batch); the engine goes back to
the second generated position (the first comes from the prefill) after `gen - 1` steps, so that
rounds cover the generation's positions alike (the static cache is read whole at every position,
so a step's cost does not grow with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from bench_lib.workloads.llama import Llama

__all__ = ["MODES", "Engine"]

#: eager: the modules as they are; compile: blocks compiled (inductor, static shapes);
#: graphs: compiled blocks, and prefill and step each captured as one CUDA graph;
#: graphs_tuned: the same with gpt-fast's inductor setting, coordinate-descent tuning, under which
#: inductor also turns a one-row matmul into a reduction that can fuse a weight's dequantization
#: (torch/_inductor/decomposition.py, `mm`): the path weight-only quantization was built for.
MODES = ("eager", "compile", "graphs", "graphs_tuned")

# Every served model of a process compiles the same `Block.forward`: Dynamo's default of 8
# compiled versions per code object ran out after four models (two shapes each) in one process,
# and the rest silently ran eager (their `compiled_graphs` read 0: docs/validation/decode-h200).
_RECOMPILE_LIMIT = 512


def _compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class Engine:
    def __init__(self, model: Llama, prompts: torch.Tensor, gen: int, mode: str) -> None:
        if gen < 2:
            raise ValueError(f"gen must be >= 2 (the prefill makes the first token), got {gen}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.model, self.gen, self.mode = model, gen, mode
        model.requires_grad_(False)  # a serving model: no autograd state, nor guards on it
        device = model.tok_embeddings.weight.device
        self.cuda = device.type == "cuda"
        if mode.startswith("graphs") and not self.cuda:
            raise ValueError(f"{mode} mode needs a CUDA device")
        batch, self.prompt_len = prompts.shape
        model.setup_cache(batch, self.prompt_len + gen)
        self.prompts = prompts.to(device)
        self.prompt_pos = torch.arange(self.prompt_len, device=device)
        self.first = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.tok = torch.zeros_like(self.first)
        self.pos = torch.full((1,), self.prompt_len, dtype=torch.long, device=device)
        self.out = torch.zeros(batch, gen, dtype=torch.long, device=device)
        self.steps = 0
        graphs_before = _compiled_graphs()
        started = time.perf_counter()
        if mode != "eager":
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, _RECOMPILE_LIMIT)
            torch._dynamo.config.accumulated_recompile_limit = max(
                torch._dynamo.config.accumulated_recompile_limit, 8 * _RECOMPILE_LIMIT)
            for block in model.layers:
                block.compile(dynamic=False)
        self._prefill: Callable[[], None] = self._prefill_once
        self._step: Callable[[], None] = self._step_once
        tuning = torch._inductor.config.patch(coordinate_descent_tuning=mode == "graphs_tuned")
        self.head = "eager"
        with torch.no_grad(), tuning:
            if mode != "eager":
                self.head = self._compile_head(batch)
            if mode.startswith("graphs"):
                self._prefill, self._step = self._capture(self._prefill_once), self._capture(self._step_once)
            else:
                for _ in range(2):  # compiles here, apart from the timed calls
                    self._prefill_once()
                    self._step_once()
            self.prefill()  # the warm-up moved the position on: start from the first generated token
        self._sync()
        self.setup_s = time.perf_counter() - started
        self.compiled_graphs = _compiled_graphs() - graphs_before

    def _compile_head(self, batch: int) -> str:
        """Compile the final norm and output head, or say why they stay eager. Eager, a quantized
        head's weight was dequantized into a 1 GB bf16 copy at every step (fp8 and int8 weights);
        compiled on torch 2.11, torchao's int4 and fp8 heads failed in Dynamo ("Polyfill handler
        <method-wrapper '__eq__'...> does not have a traceable function")."""
        model = self.model
        compiled = torch.compile(model.logits, dynamic=False)
        hidden = torch.zeros(batch, 1, model.shape.d, dtype=model.tok_embeddings.weight.dtype,
                             device=model.tok_embeddings.weight.device)
        try:
            compiled(hidden)
        except Exception as e:  # noqa: BLE001 - a head that does not compile is served eagerly, and said so
            return f"eager: torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        model.logits = compiled
        return "compiled"

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Warm up on a side stream (compiles, cuBLAS workspaces), then capture one graph."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph.replay

    def _prefill_once(self) -> None:
        logits = self.model(self.prompts, self.prompt_pos, last_only=True)
        self.first.copy_(logits[:, -1].argmax(-1, keepdim=True))
        self.out[:, :1].copy_(self.first)
        self.tok.copy_(self.first)
        self.pos.fill_(self.prompt_len)

    def _step_once(self) -> None:
        logits = self.model(self.tok, self.pos)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        self.out.index_copy_(1, self.pos - self.prompt_len + 1, nxt)
        self.tok.copy_(nxt)
        self.pos.add_(1)

    @torch.no_grad()
    def prefill(self) -> None:
        """Time to first token: the prompt through the model into the cache, the first token chosen."""
        self._prefill()
        self.steps = 0

    @torch.no_grad()
    def step(self) -> None:
        """The next output token of every row; back to the second output token (the first comes
        from the prefill) after the generation's `gen - 1` steps."""
        if self.steps == self.gen - 1:
            self.tok.copy_(self.first)
            self.pos.fill_(self.prompt_len)
            self.steps = 0
        self._step()
        self.steps += 1

    def generate(self) -> torch.Tensor:
        """Greedy tokens (batch, gen) from the prompts, on the host: the prefill's, then each step's."""
        with torch.no_grad():
            self.prefill()
            for _ in range(self.gen - 1):
                self.step()
        return self.out.cpu().clone()

    def step_times(self) -> list[float]:
        """Each step's own time over one whole generation (CUDA events on GPU): the per-token tails."""
        with torch.no_grad():
            self.prefill()
            self._sync()
            if self.cuda:
                events = [torch.cuda.Event(enable_timing=True) for _ in range(self.gen)]
                events[0].record()
                for e in events[1:]:
                    self.step()
                    e.record()
                events[-1].synchronize()
                return [a.elapsed_time(b) / 1e3 for a, b in zip(events, events[1:], strict=False)]
            times = []
            for _ in range(self.gen - 1):
                started = time.perf_counter()
                self.step()
                times.append(time.perf_counter() - started)
            return times
