"""Issue 28's H200 target: an 8B-shaped Llama checkpoint read through `hf:` decodes at the built-in
`llama_8b_random`'s TPOT (within 3%), with transformers' own `generate()` beside it.

Writes a random Llama-3.1-8B-shaped checkpoint with `save_pretrained` (bf16, untied, GQA 32/8) and a
tokenizer beside it (the tests' byte-level BPE trained on text Python ships: a user's checkpoint needs
one, and the 8B's own cannot be fetched) unless the directory holds one. The figures come from
`effbench run`, once on the built-in shape and once on the checkpoint (`--model` replaces the
built-in workloads, so these are two runs, back to back on one machine):

    PYTHONPATH=. python3 docs/validation/hf-decode/h200_target.py /tmp/llama8b
    effbench run --suite decode --device cuda -k "graphs_tuned and bf16" --out OUT
    effbench run --suite decode --device cuda --model hf:/tmp/llama8b -k "bf16 and not eager" --out OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))


def write_checkpoint(path: Path) -> None:
    from tiny_hf import _tokenizer  # the tests' tokenizer: a user's checkpoint directory holds one
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=128_256, hidden_size=4096, intermediate_size=14_336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                         rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
                         tie_word_embeddings=False, architectures=["LlamaForCausalLM"])
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    _tokenizer().save_pretrained(path)
    del model
    torch.cuda.empty_cache()


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/llama8b")
    if not (target / "config.json").is_file():
        write_checkpoint(target)
    print(target)
