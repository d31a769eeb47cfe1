"""Small models the graph tests share."""

from __future__ import annotations

import ember
import ember.nn as nn
import ember.nn.functional as F


class Block(nn.Module):
    """A pre-LayerNorm GPT block, as W3's: fused qkv, causal attention, GELU-tanh MLP."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (a.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for a in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(o.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    """A character GPT of W3's design, small. ``sliced_pos``: the positions are the first
    rows of their embedding's weight (as W3's), else looked up with ``arange``."""

    def __init__(self, vocab: int = 11, ctx: int = 8, d: int = 16, heads: int = 2,
                 layers: int = 2, head_bias: bool = True, sliced_pos: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.sliced_pos = sliced_pos
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.lnf, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=head_bias)

    def forward(self, idx):
        t = idx.shape[1]
        pos = self.pos.weight[:t] if self.sliced_pos else self.pos(ember.arange(t))
        x = self.tok(idx) + pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.lnf(x))
