"""Tiny transformers checkpoints made inside the tests: random weights of a few dimensions, saved as a user's
checkpoint directory is (config.json, safetensors weights, a fast tokenizer trained on text Python ships)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")

FAMILIES = ("llama", "mistral", "qwen2")


@lru_cache(maxsize=1)
def _tokenizer():
    """A byte-level BPE of 320 tokens trained on the first 100 kB of the stdlib's help topics."""
    from pydoc_data.topics import topics

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = "\n\n".join(topics[key] for key in sorted(topics))[:100_000]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text[i:i + 2000] for i in range(0, len(text), 2000)], trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def tiny_checkpoint(directory: Path, family: str = "llama", seed: int = 0, **config) -> Path:
    """Write a random `family` causal LM (hidden 32, 2 layers, 4 query heads over 2 KV heads) and the tokenizer."""
    import torch

    tokenizer = _tokenizer()
    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
           "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[family]
    cfg = cls[0](vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **config)
    torch.manual_seed(seed)
    cls[1](cfg).save_pretrained(directory)  # safetensors: the default since transformers 4.35, the only format in 5
    tokenizer.save_pretrained(directory)
    return directory
