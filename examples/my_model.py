"""Your own model in effbench: `effbench run --suite inference --model py:examples.my_model:my_mlp`, and a causal LM
that the training suite trains too: `effbench run --suite training --model py:examples.my_model:my_byte_lm`.

A factory is any callable that takes no arguments and returns a `bench_lib.workloads.base.Workload`. The common
case, a trained module and its real data, is `ModuleWorkload`: give it the fp32 module, held-out inputs (and
their labels, for an accuracy verdict), and effbench applies every inference technique that fits the module's
layers, times it, and judges each compressed model against this one. Run effbench from the directory that holds
`examples/` (or put your module on PYTHONPATH): the factory is imported in every measuring process.

Here: a small MLP trained in a second on scikit-learn's handwritten digits (shipped with scikit-learn).
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from bench_lib.workloads.user.adapter import ModuleWorkload


def my_mlp() -> ModuleWorkload:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.long)
    cut = int(len(x) * 0.8)  # the last 20% are held out
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):  # full-batch training: a second on a laptop, ~97% held-out accuracy
        loss = F.cross_entropy(model(x[:cut]), y[:cut])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ModuleWorkload(model.eval(), eval_data=x[cut:], train_data=x[:cut], labels=y[cut:])


def my_byte_lm() -> ModuleWorkload:
    """A causal LM over bytes, as the training suite takes a factory's model: `train_data` and `eval_data` are
    int64 rows of token ids, and the model maps (batch, tokens) ids to (batch, tokens, vocabulary) logits, each
    position's logits scoring the next token. Here a bigram model (each byte's logits over the next byte, an
    embedding and an MLP), trained for 60 steps on Python's own help text; the last 10% of the rows are held out."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics)).encode()[:200_000]
    ids = torch.tensor(list(text), dtype=torch.long)
    rows = ids[:len(ids) // 65 * 65].view(-1, 65)  # 64 bytes and the one after each
    cut = int(len(rows) * 0.9)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(256, 64), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        batch = rows[torch.randint(0, cut, (32,))]
        loss = F.cross_entropy(model(batch[:, :-1]).reshape(-1, 256), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ModuleWorkload(model.eval(), eval_data=rows[cut:cut + 32], train_data=rows[:cut])
