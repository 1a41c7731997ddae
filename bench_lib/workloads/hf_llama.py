"""A local Llama, Mistral or Qwen2-family transformers checkpoint as effbench's own serving model.

The checkpoint's config.json is read with transformers' `AutoConfig` and its safetensors files with
`safetensors`, from the directory only (nothing is fetched from a hub). The weights are mapped onto
`llama.Llama` by their names: q, k and v stacked into `wqkv` (their rows permuted from transformers'
rotate-half layout, pairs (i, i + head_dim/2), to the interleaved pairs (2i, 2i+1) that `Llama`
rotates: the inverse of transformers' own Meta-to-HF conversion), gate and up stacked into `w13`,
down, the two norms of each block, the final norm, the embeddings and the output head (or the
embeddings again where tied), the biases where the family has them (Qwen2: q, k and v; Llama's
`attention_bias`: the output projection too).

What `Llama` cannot serve exactly (another architecture, an MLP bias, a rope type other than
default, linear or llama3, a partial rotary dimension, sliding-window attention over a sequence
longer than its window) has a reason (`unsupported_reason`, `sliding_window_reason`): such a model
runs through transformers' own path only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench_lib.workloads.llama import Llama, LlamaLM, LlamaShape, RopeScaling
from bench_lib.workloads.text import stdlib_bytes

__all__ = ["ARCHITECTURES", "Checkpoint", "HFLlamaLM", "checkpoint_identity", "read_config", "unsupported_reason",
           "sliding_window_reason", "shape_of", "mapped_state_dict", "load_hf_model"]

#: The transformers classes whose checkpoints map onto `Llama` (the families' differences are in the config).
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
_ROPE_KINDS = ("default", "linear", "llama3")


def read_config(path: str | Path) -> Any:
    """The checkpoint's transformers config, from the directory alone."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path), local_files_only=True)


def _rope_parameters(config: Any) -> dict:
    """transformers 5's `rope_parameters` (rope_type, rope_theta, scaling keys), standardized from
    older configs' `rope_theta` and `rope_scaling`."""
    params = getattr(config, "rope_parameters", None)
    if params is None:
        params = dict(getattr(config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(config, "rope_theta", 10_000.0))
    params = dict(params)
    params.setdefault("rope_type", params.get("type", "default"))
    return params


def _architecture(config: Any) -> str:
    return (getattr(config, "architectures", None) or ["(none named)"])[0]


def unsupported_reason(config: Any) -> str | None:
    """Why effbench's engine cannot serve this checkpoint exactly; None if it can."""
    arch = _architecture(config)
    if arch not in ARCHITECTURES:
        return f"architecture {arch} is not one effbench's engine maps (only {', '.join(ARCHITECTURES)})"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r} (effbench's engine serves SwiGLU with silu)"
    if getattr(config, "mlp_bias", False):
        return "mlp_bias (effbench's engine has no MLP biases)"
    rope = _rope_parameters(config)
    if isinstance(rope.get("full_attention"), dict) or rope["rope_type"] not in _ROPE_KINDS:
        kind = "per-layer rope parameters" if "full_attention" in rope else f"rope type {rope['rope_type']!r}"
        return f"{kind} (effbench's engine knows {', '.join(_ROPE_KINDS)})"
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        return f"partial rotary factor {rope['partial_rotary_factor']} (effbench's engine rotates whole heads)"
    if config.num_attention_heads % config.num_key_value_heads:
        return "query heads not a multiple of the kv heads"
    return None


def sliding_window_reason(config: Any, seq: int) -> str | None:
    """Why a sequence of `seq` positions cannot be served exactly: a sliding window shorter than it
    (Mistral's `sliding_window`; Qwen2's where `use_sliding_window` makes layers slide). Within the
    window, sliding attention and full attention are the same."""
    window = getattr(config, "sliding_window", None)
    sliding = window is not None and (getattr(config, "use_sliding_window", True)
                                      and "sliding_attention" in (getattr(config, "layer_types", None)
                                                                  or ["sliding_attention"]))
    if sliding and seq > window:
        return (f"sliding-window attention in use ({seq} positions over a window of {window}); effbench's engine "
                "attends to every cached position")
    return None


def shape_of(config: Any) -> LlamaShape:
    """The `LlamaShape` of a supported config (`unsupported_reason` is None)."""
    rope = _rope_parameters(config)
    scaling = None
    if rope["rope_type"] == "linear":
        scaling = RopeScaling("linear", float(rope["factor"]))
    elif rope["rope_type"] == "llama3":
        scaling = RopeScaling("llama3", float(rope["factor"]), float(rope["low_freq_factor"]),
                              float(rope["high_freq_factor"]),
                              int(rope.get("original_max_position_embeddings") or config.max_position_embeddings))
    qwen = _architecture(config) == "Qwen2ForCausalLM"
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return LlamaShape(vocab=config.vocab_size, d=config.hidden_size, layers=config.num_hidden_layers,
                      heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
                      ffn=config.intermediate_size, rope_theta=float(rope["rope_theta"]),
                      tied=bool(getattr(config, "tie_word_embeddings", False)), norm_eps=float(config.rms_norm_eps),
                      qkv_bias=qwen or bool(getattr(config, "attention_bias", False)),
                      out_bias=not qwen and bool(getattr(config, "attention_bias", False)),
                      rope_scaling=scaling,
                      explicit_head_dim=head_dim if head_dim != config.hidden_size // config.num_attention_heads else 0)


def _weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{path} has no safetensors weights")
    return files


def _interleave(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows (or bias entries) of each head from the rotate-half layout, pairs (i, i + hd/2), to
    interleaved pairs (2i, 2i+1): row 2i takes row i, row 2i+1 row i + hd/2."""
    rest = w.shape[1:]
    return w.reshape(heads, 2, -1, *rest).transpose(1, 2).reshape(w.shape)


def mapped_state_dict(path: str | Path, shape: LlamaShape, device: str | torch.device,
                      dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under `Llama`'s names, on `device` in `dtype`; every tensor of the
    checkpoint is used, and every parameter of the model found (else ValueError, naming them)."""
    from safetensors.torch import load_file

    hf: dict[str, torch.Tensor] = {}
    for file in _weight_files(Path(path)):
        hf.update(load_file(str(file), device=str(device)))
    used: set[str] = set()

    def take(name: str) -> torch.Tensor:
        if name not in hf:
            raise ValueError(f"checkpoint {path} lacks {name}")
        used.add(name)
        return hf[name].to(dtype)

    out = {"tok_embeddings.weight": take("model.embed_tokens.weight"), "norm.weight": take("model.norm.weight")}
    out["output.weight"] = out["tok_embeddings.weight"] if shape.tied else take("lm_head.weight")
    for i in range(shape.layers):
        hf_layer, ours = f"model.layers.{i}.", f"layers.{i}."
        attn = hf_layer + "self_attn."
        for kind in ("weight", "bias") if shape.qkv_bias else ("weight",):
            out[ours + f"attention.wqkv.{kind}"] = torch.cat([
                _interleave(take(attn + f"q_proj.{kind}"), shape.heads),
                _interleave(take(attn + f"k_proj.{kind}"), shape.kv_heads),
                take(attn + f"v_proj.{kind}")])
        out[ours + "attention.wo.weight"] = take(attn + "o_proj.weight")
        if shape.out_bias:
            out[ours + "attention.wo.bias"] = take(attn + "o_proj.bias")
        mlp = hf_layer + "mlp."
        out[ours + "feed_forward.w13.weight"] = torch.cat([take(mlp + "gate_proj.weight"),
                                                           take(mlp + "up_proj.weight")])
        out[ours + "feed_forward.w2.weight"] = take(mlp + "down_proj.weight")
        out[ours + "attention_norm.weight"] = take(hf_layer + "input_layernorm.weight")
        out[ours + "ffn_norm.weight"] = take(hf_layer + "post_attention_layernorm.weight")
    left = sorted(set(hf) - used - ({"lm_head.weight"} if shape.tied else set()))
    if left:
        raise ValueError(f"checkpoint {path} has tensors effbench's engine does not map: {', '.join(left[:5])}"
                         + (f" and {len(left) - 5} more" if len(left) > 5 else ""))
    return {k: v.contiguous() for k, v in out.items()}


def load_hf_model(path: str | Path, device: str, dtype: torch.dtype) -> nn.Module:
    """transformers' own causal LM of the checkpoint, local files only, in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    return model.to(device).eval()


@dataclass(frozen=True)
class Checkpoint:
    """A local transformers checkpoint directory, read once per process: its config, whether
    effbench's engine can serve it, its prompts and its identity."""

    path: str
    name: str

    @cached_property
    def config(self) -> Any:
        return read_config(self.path)

    @cached_property
    def engine_reason(self) -> str | None:
        """Why effbench's engine cannot serve it (it then runs through transformers only); None if it can."""
        return unsupported_reason(self.config)

    def llama(self) -> HFLlamaLM:
        """The checkpoint as a decode workload of effbench's engine (ValueError with the reason if unsupported)."""
        if self.engine_reason:
            raise ValueError(f"{self.name}: {self.engine_reason}")
        return HFLlamaLM(shape_of(self.config), checkpoint=self)

    def prompts(self, batch: int, length: int) -> torch.Tensor:
        """`batch` prompts of `length` tokens: the held-out stdlib text through the checkpoint's
        tokenizer.json where it has one, else its bytes as token ids (modulo the vocabulary)."""
        held_out = stdlib_bytes()[1]
        tokenizer = Path(self.path) / "tokenizer.json"
        if tokenizer.is_file():
            from tokenizers import Tokenizer

            text = bytes(held_out[: 16 * batch * length].tolist()).decode("utf-8", errors="replace")
            ids = torch.tensor(Tokenizer.from_file(str(tokenizer)).encode(text).ids, dtype=torch.long)
        else:
            ids = held_out.long() % self.config.vocab_size
        if len(ids) < batch * length:
            raise ValueError(f"{self.name}: the held-out text gives {len(ids)} tokens, fewer than "
                             f"{batch} prompts of {length}")
        stride = (len(ids) - length) // batch
        return torch.stack([ids[i * stride: i * stride + length] for i in range(batch)]).contiguous()

    def identity(self) -> dict[str, Any]:
        return {"prompt_tokens": "tokenizer.json" if (Path(self.path) / "tokenizer.json").is_file()
                else "stdlib bytes as token ids (no tokenizer.json)", **checkpoint_identity(self.path)}


@dataclass(frozen=True)
class HFLlamaLM(LlamaLM):
    """A user's checkpoint as a decode workload of effbench's engine: `LlamaLM`'s interface (pruning of
    units and heads included), its weights from the checkpoint rather than random or trained here.
    `trained_weights` is False: the decode suite judges it by greedy tokens against its own reference,
    not by a byte-level perplexity, and structured pruning has no fine-tune on the user's data."""

    checkpoint: Checkpoint | None = None

    def build(self, device: str, dtype: torch.dtype) -> Llama:
        """The checkpoint's weights in `dtype` on `device`, in eval mode, without caches (the model is
        made on the meta device and takes the loaded tensors: no random initialization of 8B weights)."""
        assert self.checkpoint is not None
        with torch.device("meta"):
            model = Llama(self.shape)
        model.load_state_dict(mapped_state_dict(self.checkpoint.path, self.shape, device, dtype), strict=True,
                              assign=True)
        if self.shape.tied:
            model.output.weight = model.tok_embeddings.weight
        return model.eval()

    def prompts(self, batch: int, length: int) -> torch.Tensor:
        assert self.checkpoint is not None
        return self.checkpoint.prompts(batch, length)

    def describe(self) -> dict[str, Any]:
        assert self.checkpoint is not None
        return {**super().describe(), "weights": f"checkpoint {self.checkpoint.path}", **self.checkpoint.identity()}


def checkpoint_identity(path: str | Path) -> dict[str, Any]:
    """What identifies a checkpoint in a result: its architecture, the hash of its config.json,
    its parameter count (from the safetensors headers), the dtype it was saved in, and the
    transformers version that reads it."""
    import transformers
    from safetensors import safe_open

    root = Path(path)
    raw = (root / "config.json").read_bytes()
    config = json.loads(raw)
    params, dtypes = 0, set()
    for file in _weight_files(root):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                s = f.get_slice(key)
                params += math.prod(s.get_shape())
                dtypes.add(str(s.get_dtype()))
    return {"checkpoint_architecture": (config.get("architectures") or ["(none named)"])[0],
            "checkpoint_model_type": config.get("model_type"),
            "checkpoint_config_sha256": hashlib.sha256(raw).hexdigest(),
            "checkpoint_parameters": params,
            "checkpoint_dtype": config.get("dtype") or config.get("torch_dtype") or ",".join(sorted(dtypes)),
            "transformers_version": transformers.__version__}
