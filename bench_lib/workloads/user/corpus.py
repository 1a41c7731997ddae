"""The text a user's language model is judged on: English prose that ships with Python, or the user's own file.

`pydoc_data.topics` holds the language reference's topics as plain text (about 460 KB of English prose, the
source of `help()`), so a checkpoint's own tokenizer reads real text with no download. The last part is held out
for perplexity; the first part is calibration and recovery-training data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

__all__ = ["Corpus", "corpus", "token_windows"]

HELD_OUT_FRACTION = 0.1


@dataclass(frozen=True)
class Corpus:
    text: str
    source: str  # where the text came from, as results record it
    sha256: str  # of the UTF-8 text


@lru_cache(maxsize=4)
def corpus(eval_text: str | None = None) -> Corpus:
    """The user's text file (`--eval-text`), else the stdlib's `pydoc_data.topics` in key order."""
    if eval_text:
        text = Path(eval_text).read_text(encoding="utf-8")
        source = eval_text
    else:
        from pydoc_data.topics import topics

        text = "\n\n".join(topics[key] for key in sorted(topics))
        source = "python stdlib pydoc_data.topics"
    return Corpus(text, source, hashlib.sha256(text.encode()).hexdigest())


def token_windows(ids: list[int], count: int, seq: int) -> torch.Tensor:
    """`count` windows of seq+1 tokens at an even stride over `ids` (fixed, no randomness)."""
    data = torch.tensor(ids, dtype=torch.long)
    if len(data) < seq + 1:
        raise ValueError(f"the text gives {len(data)} tokens; a window needs {seq + 1}")
    stride = max(1, (len(data) - seq - 1) // max(1, count - 1)) if count > 1 else 1
    starts = [min(i * stride, len(data) - seq - 1) for i in range(count)]
    return torch.stack([data[s:s + seq + 1] for s in starts])
