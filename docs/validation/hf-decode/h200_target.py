"""Issue 28's H200 target: an 8B-shaped Llama checkpoint read through `hf:` decodes at the built-in
`llama_8b_random`'s TPOT (within 3%), with transformers' own `generate()` beside it.

Writes a random Llama-3.1-8B-shaped checkpoint with `save_pretrained` (bf16, untied, GQA 32/8) unless the
directory holds one, then measures in this process, one case after the other (bf16, batch 1, prompt 128,
128 generated tokens, the quick profile's window): the built-in shape and the checkpoint in `graphs_tuned`
mode (decode), and `hf_generate` (prefill and decode). Prints each case's figure, the checkpoint's mapping
check (bf16 targets: logits' max relative error <= 2e-2, first 16 greedy tokens identical) and the TPOT ratio.
For the interleaved figures, run `effbench run` twice (command in the module's __main__ output).

    PYTHONPATH=. python3 docs/validation/hf-decode/h200_target.py /tmp/llama8b
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from bench_lib.results.case import CaseSpec
from bench_lib.suites.decode.hf import HF_MODE
from bench_lib.suites.decode.suite import GEN_TOKENS, DecodeSuite


def write_checkpoint(path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=128_256, hidden_size=4096, intermediate_size=14_336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                         rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 500_000.0},
                         tie_word_embeddings=False, architectures=["LlamaForCausalLM"])
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    del model
    torch.cuda.empty_cache()


def main(path: Path) -> None:
    if not (path / "config.json").is_file():
        write_checkpoint(path)
    params = {"batch": 1, "prompt": 128, "gen": GEN_TOKENS}
    user = {**params, "model": f"hf:{path.resolve()}"}
    cases = [
        CaseSpec.make("decode", "llama_8b_random", "bf16", "cuda", mode="graphs_tuned", phase="decode", **params),
        CaseSpec.make("decode", path.name, "bf16", "cuda", mode="graphs_tuned", phase="decode", **user),
        CaseSpec.make("decode", path.name, "bf16", "cuda", mode=HF_MODE, phase="prefill", **user),
        CaseSpec.make("decode", path.name, "bf16", "cuda", mode=HF_MODE, phase="decode", **user),
    ]
    suite, figures = DecodeSuite(), {}
    for i, case in enumerate(cases):
        result = suite.execute(case, "quick")
        if i + 1 < len(cases) and suite.served_key(cases[i + 1]) != suite.served_key(case):
            suite._served.clear()  # one 8B model on the GPU at a time (both phases of generate() share one)
            torch.cuda.empty_cache()
        keys = ("tpot_median_s", "ttft_median_s", "hf_mapping_logits_max_rel_error", "hf_mapping_argmax_agreement",
                "hf_mapping_greedy_prefix_tokens",
                "greedy_prefix_tokens", "bandwidth_fraction", "hf_generate_compiled", "checkpoint_parameters")
        figures[case.id] = {"status": result.status, **({"reason": result.reason.splitlines()[0]} if result.reason
                                                         else {}), **{k: result.metrics.get(k) for k in keys}}
        print(json.dumps({case.id: figures[case.id]}), flush=True)
    builtin, ours = (figures[c.id].get("tpot_median_s") for c in cases[:2])
    if builtin and ours:
        print(f"checkpoint TPOT / llama_8b_random TPOT = {ours / builtin:.4f} (target <= 1.03)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/llama8b"))
