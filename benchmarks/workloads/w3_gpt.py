"""W3: character GPT (vocab 96, context 64, d 128, 4 heads, 4 pre-LN layers, GELU-tanh,
untied head), batch 32, AdamW(1e-3, wd 0.01). W4 (GPT part): forward at batch 1 x 64.

The model class is written once against the PyTorch API and instantiated with ``m=torch``
or ``m=ember``: the same source runs in both frameworks."""

from __future__ import annotations

import math

import numpy as np

from .common import (
    DATA_SEEDS,
    WEIGHT_SEED,
    NumpyAdam,
    classifier_step,
    inference_call,
    softmax_xent,
)

V, T, D, H, L, B = 96, 64, 128, 4, 4, 32
HD = D // H
GELU_C = math.sqrt(2.0 / math.pi)


def make_weights() -> dict[str, np.ndarray]:
    """GPT-2 style N(0, 0.02) draws in a fixed order; biases 0, LayerNorm (1, 0)."""
    rng = np.random.default_rng(WEIGHT_SEED)

    def n(*shape):
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    w = {"tok": n(V, D), "pos": n(T, D)}
    for i in range(L):
        w[f"qkv{i}"], w[f"proj{i}"] = n(D, 3 * D), n(D, D)
        w[f"fc{i}"], w[f"fc2{i}"] = n(D, 4 * D), n(4 * D, D)
    w["head"] = n(D, V)
    z = np.zeros
    for i in range(L):
        w[f"qkv{i}_b"], w[f"proj{i}_b"] = z(3 * D, np.float32), z(D, np.float32)
        w[f"fc{i}_b"], w[f"fc2{i}_b"] = z(4 * D, np.float32), z(D, np.float32)
        for ln in ("ln1", "ln2"):
            w[f"{ln}{i}_g"], w[f"{ln}{i}_b"] = np.ones(D, np.float32), z(D, np.float32)
    w["lnf_g"], w["lnf_b"] = np.ones(D, np.float32), np.zeros(D, np.float32)
    return w


def make_batch(batch: int = B) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEEDS["W3"])
    toks = rng.integers(0, V, (batch, T + 1))
    return toks[:, :T].copy(), toks[:, 1:].copy()


# -- NumPy floor ---------------------------------------------------------------------------
def _ln_fwd(x, g, b):
    mu = x.mean(-1, keepdims=True)
    xc = x - mu
    rstd = 1.0 / np.sqrt((xc * xc).mean(-1, keepdims=True) + 1e-5)
    xhat = xc * rstd
    return xhat * g + b, (xhat, rstd)


def _ln_bwd(dy, g, cache):
    xhat, rstd = cache
    dg = (dy * xhat).reshape(-1, D).sum(0)
    db = dy.reshape(-1, D).sum(0)
    dxh = dy * g
    dx = rstd * (dxh - dxh.mean(-1, keepdims=True) - xhat * (dxh * xhat).mean(-1, keepdims=True))
    return dx, dg, db


def _gelu(x):
    t = np.tanh(GELU_C * (x + 0.044715 * x**3))
    return 0.5 * x * (1 + t), t


def _gelu_bwd(dy, x, t):
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x * x))


MASK = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)


def numpy_step():
    w = {k: v.copy() for k, v in make_weights().items()}
    names = list(w)
    xs, ys = make_batch()
    opt = NumpyAdam([w[k] for k in names], weight_decay=0.01, decoupled=True)
    scale = np.float32(1 / math.sqrt(HD))

    def heads(t):  # (B,T,D) -> (B,H,T,HD)
        return t.reshape(B, T, H, HD).transpose(0, 2, 1, 3)

    def step() -> float:
        g = {}
        x = w["tok"][xs] + w["pos"]
        caches = []
        for i in range(L):
            h1, c1 = _ln_fwd(x, w[f"ln1{i}_g"], w[f"ln1{i}_b"])
            qkv = h1 @ w[f"qkv{i}"] + w[f"qkv{i}_b"]
            q, k, v = (heads(a) for a in np.split(qkv, 3, axis=-1))
            s = (q @ k.transpose(0, 1, 3, 2)) * scale + MASK
            s = np.exp(s - s.max(-1, keepdims=True))
            p = s / s.sum(-1, keepdims=True)
            o = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
            x = x + o @ w[f"proj{i}"] + w[f"proj{i}_b"]
            h2, c2 = _ln_fwd(x, w[f"ln2{i}_g"], w[f"ln2{i}_b"])
            f = h2 @ w[f"fc{i}"] + w[f"fc{i}_b"]
            gf, tf = _gelu(f)
            x = x + gf @ w[f"fc2{i}"] + w[f"fc2{i}_b"]
            caches.append((h1, c1, q, k, v, p, o, h2, c2, f, gf, tf))
        hf, cf = _ln_fwd(x, w["lnf_g"], w["lnf_b"])
        logits = hf.reshape(-1, D) @ w["head"]
        loss, dl = softmax_xent(logits, ys.reshape(-1))
        g["head"] = hf.reshape(-1, D).T @ dl
        dx, g["lnf_g"], g["lnf_b"] = _ln_bwd((dl @ w["head"].T).reshape(B, T, D), w["lnf_g"], cf)
        for i in reversed(range(L)):
            h1, c1, q, k, v, p, o, h2, c2, f, gf, tf = caches[i]
            dm = dx.reshape(-1, D)
            g[f"fc2{i}"] = gf.reshape(-1, 4 * D).T @ dm
            g[f"fc2{i}_b"] = dm.sum(0)
            df = _gelu_bwd((dm @ w[f"fc2{i}"].T).reshape(B, T, 4 * D), f, tf).reshape(-1, 4 * D)
            g[f"fc{i}"] = h2.reshape(-1, D).T @ df
            g[f"fc{i}_b"] = df.sum(0)
            dh2 = (df @ w[f"fc{i}"].T).reshape(B, T, D)
            d, g[f"ln2{i}_g"], g[f"ln2{i}_b"] = _ln_bwd(dh2, w[f"ln2{i}_g"], c2)
            dx = dx + d
            da = dx.reshape(-1, D)
            g[f"proj{i}"] = o.reshape(-1, D).T @ da
            g[f"proj{i}_b"] = da.sum(0)
            do = heads((da @ w[f"proj{i}"].T).reshape(B, T, D))
            dp = do @ v.transpose(0, 1, 3, 2)
            dv = p.transpose(0, 1, 3, 2) @ do
            ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * scale
            dq = ds @ k
            dk = ds.transpose(0, 1, 3, 2) @ q
            dqkv = np.concatenate(
                [t.transpose(0, 2, 1, 3).reshape(B, T, D) for t in (dq, dk, dv)], axis=-1
            ).reshape(-1, 3 * D)
            g[f"qkv{i}"] = h1.reshape(-1, D).T @ dqkv
            g[f"qkv{i}_b"] = dqkv.sum(0)
            d, g[f"ln1{i}_g"], g[f"ln1{i}_b"] = _ln_bwd(
                (dqkv @ w[f"qkv{i}"].T).reshape(B, T, D), w[f"ln1{i}_g"], c1
            )
            dx = dx + d
        g["pos"] = dx.sum(0)
        g["tok"] = np.zeros_like(w["tok"])
        np.add.at(g["tok"], xs, dx)
        opt.step([g[k] for k in names])
        return loss

    return step


# -- one model definition for both frameworks ----------------------------------------------
def make_gpt(m):
    """The W3 model class for framework module ``m`` (torch or ember)."""
    nn, F = m.nn, m.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
            self.fc, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
            q, k, v = (a.reshape(b, t, H, HD).transpose(1, 2) for a in (q, k, v))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, t, D))
            return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(V, D), nn.Embedding(T, D)
            self.blocks = nn.ModuleList([Block() for _ in range(L)])
            self.lnf = nn.LayerNorm(D)
            self.head = nn.Linear(D, V, bias=False)

        def forward(self, idx):
            x = self.tok(idx) + self.pos.weight[: idx.shape[1]]
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.lnf(x))

    model = GPT()
    w = make_weights()
    with m.no_grad():

        def put(p, a):
            p.copy_(m.tensor(np.ascontiguousarray(a)))

        put(model.tok.weight, w["tok"])
        put(model.pos.weight, w["pos"])
        put(model.head.weight, w["head"].T)
        put(model.lnf.weight, w["lnf_g"])
        put(model.lnf.bias, w["lnf_b"])
        for i, blk in enumerate(model.blocks):
            for name in ("qkv", "proj", "fc", "fc2"):
                put(getattr(blk, name).weight, w[f"{name}{i}"].T)
                put(getattr(blk, name).bias, w[f"{name}{i}_b"])
            for ln in ("ln1", "ln2"):
                put(getattr(blk, ln).weight, w[f"{ln}{i}_g"])
                put(getattr(blk, ln).bias, w[f"{ln}{i}_b"])
    return model


def framework_step(m, compiled: bool = False, device: str = "cpu"):
    """A W3 training step in framework ``m`` (torch or ember; ``compiled``: under
    ``m.compile``) on ``device``."""
    model = make_gpt(m).to(device)
    x, y = (m.tensor(a).to(device) for a in make_batch())
    opt = m.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return classifier_step(m, model, x, y, opt, flatten_logits=True, compiled=compiled)


def framework_infer(m, compiled: bool = False):
    """W4 GPT: forward at batch 1 x 64 without grad, returning a host array."""
    return inference_call(m, make_gpt(m), m.tensor(make_batch(1)[0]), compiled)
