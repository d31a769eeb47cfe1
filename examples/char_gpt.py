"""A character-level GPT trained on the Shakespeare text bundled with ember (no download).

What it shows:

* a decoder-only transformer written from ember primitives: learned token and position
  embeddings, pre-LayerNorm blocks, causal self-attention through
  ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``, a GELU MLP, weight tying
  between the token embedding and the output head;
* a hand-written training loop: ``AdamW`` with weight decay on the matrices only (two
  parameter groups), a warmup + cosine learning-rate schedule (``LambdaLR``), gradient
  clipping (``nn.utils.clip_grad_norm_``), periodic validation loss under ``no_grad``;
* text generation with temperature and top-k sampling;
* a training checkpoint (model, optimizer, scheduler, RNG state) written with
  ``ember.io.save_checkpoint`` and read back by ``--sample-only``.

The cosine schedule runs over whichever budget ends first, ``--max-steps`` or
``--max-seconds`` (its progress is ``max(step / max_steps, elapsed / max_seconds)``), so a
time-boxed run still ends with a decayed learning rate on a slower or busier machine.

Run it:

    python examples/char_gpt.py                       # the full run (about 9 minutes)
    python examples/char_gpt.py --max-seconds 120     # a shorter run
    python examples/char_gpt.py --sample-only --checkpoint char_gpt.safetensors
    python examples/char_gpt.py --quick               # a few seconds: the smoke test

Measured once with the default arguments (811,264 parameters: block 64, d_model 128,
4 layers of 4 heads, batch 32, one BLAS thread) on 2 CPU cores shared with other jobs (load
average 2.1 to 5.2 during the run): validation loss 2.60 after 100 steps (45 s), 2.03 after
600 (300 s), below 2.0 from step 700 (351 s, 1.97), and 1.900 nats/char at the end
(1,153 steps, 542 s of training, 9 min 5 s in all with start-up and the 400-character
sample). The validation text is the last 10% of the file (most of A Midsummer Night's
Dream), a play the model never trains on, so it scores about 0.3 nats above the training
loss.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

import ember
import ember.nn.functional as F
from ember import nn
from ember.data import CharDataset, DataLoader, Subset, load_shakespeare
from ember.optim.lr_scheduler import LambdaLR


# -- the model --------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees positions ``<= t`` only.

    Example:
        >>> CausalSelfAttention(32, 4)(ember.randn(2, 5, 32)).shape
        (2, 5, 32)
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_head ({n_head})")
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: ember.Tensor) -> ember.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> 3 x (B, heads, T, head_dim)
        qkv = self.qkv(x).reshape(B, T, 3, self.n_head, C // self.n_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads back side by side
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    """A pre-LN transformer block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``.

    Example:
        >>> Block(32, 4)(ember.randn(2, 5, 32)).shape
        (2, 5, 32)
    """

    def __init__(self, d_model: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: ember.Tensor) -> ember.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A small decoder-only transformer over characters: ``(B, T)`` ids to ``(B, T, vocab)``
    logits. The output head shares its weight with the token embedding.

    Example:
        >>> GPT(vocab_size=10, block_size=8, d_model=32, n_layer=2, n_head=4)(
        ...     ember.zeros(2, 8, dtype=ember.int64)).shape
        (2, 8, 10)
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        d_model: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(d_model, n_head, dropout) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying
        # GPT-2's initialisation: N(0, 0.02), the residual projections scaled by 1/sqrt(2L)
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.ndim == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: ember.Tensor) -> ember.Tensor:
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence of length {T} > block_size {self.block_size}")
        x = self.drop(self.tok_emb(idx) + self.pos_emb(ember.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


# -- sampling ---------------------------------------------------------------------------------
@ember.no_grad()
def generate(
    model: GPT,
    idx: list[int],
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> list[int]:
    """Continue ``idx`` by ``max_new_tokens`` ids sampled from ``softmax(logits /
    temperature)`` restricted to the ``top_k`` most likely ids (all of them when None).

    Example:
        >>> m = GPT(vocab_size=5, block_size=4, d_model=16, n_layer=1, n_head=2)
        >>> len(generate(m, [0, 1], 6, temperature=0.8, top_k=3))
        8
    """
    was_training = model.training
    model.eval()
    rng = np.random.default_rng(seed)
    ids = list(idx)
    for _ in range(max_new_tokens):
        context = ember.tensor([ids[-model.block_size :]], dtype=ember.int64)
        logits = model(context)[0, -1] / max(temperature, 1e-6)
        if top_k is not None and top_k < logits.shape[-1]:
            kth = logits.topk(top_k).values[-1]
            logits = ember.where(logits < kth, -math.inf, logits)
        probs = F.softmax(logits, dim=-1).numpy().astype(np.float64)
        ids.append(int(rng.choice(len(probs), p=probs / probs.sum())))
    model.train(was_training)
    return ids


# -- training ---------------------------------------------------------------------------------
def warmup_cosine(progress: float, step: int, warmup: int, min_ratio: float) -> float:
    """The LR multiplier: linear warmup over ``warmup`` steps, then a cosine from 1 down to
    ``min_ratio`` as ``progress`` goes from 0 to 1.

    Example:
        >>> warmup_cosine(0.0, 0, 10, 0.1), warmup_cosine(1.0, 500, 10, 0.1)
        (0.1, 0.1)
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@ember.no_grad()
def evaluate(model: GPT, loader: DataLoader) -> float:
    """Mean cross-entropy (nats per character) of ``model`` over ``loader``.

    Example:
        >>> evaluate(model, val_loader)  # doctest: +SKIP
        1.93
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in loader:
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        total += float(loss) * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count


def build_parser() -> argparse.ArgumentParser:
    """The command-line options.

    Example:
        >>> build_parser().parse_args(["--quick"]).quick
        True
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--block-size", type=int, default=64, help="context length in characters (default 64)")
    a("--d-model", type=int, default=128, help="embedding width (default 128)")
    a("--n-layer", type=int, default=4, help="transformer blocks (default 4)")
    a("--n-head", type=int, default=4, help="attention heads (default 4)")
    a("--dropout", type=float, default=0.0, help="dropout rate (default 0)")
    a("--batch-size", type=int, default=32, help="sequences per step (default 32)")
    a("--lr", type=float, default=3e-3, help="peak AdamW learning rate (default 3e-3)")
    a("--min-lr-ratio", type=float, default=0.1, help="final LR / peak LR (default 0.1)")
    a("--warmup", type=int, default=50, help="linear warmup steps (default 50)")
    a("--weight-decay", type=float, default=0.1, help="AdamW weight decay (default 0.1)")
    a("--grad-clip", type=float, default=1.0, help="max gradient norm (default 1.0)")
    a("--max-steps", type=int, default=5000, help="optimizer steps at most (default 5000)")
    a("--max-seconds", type=float, default=540.0, help="training time budget (default 540)")
    a("--eval-interval", type=int, default=100, help="steps between validations (default 100)")
    a("--eval-batches", type=int, default=8, help="validation batches of 64 (default 8)")
    a("--val-fraction", type=float, default=0.1, help="text held out (default 0.1)")
    a("--text-chars", type=int, default=0, help="use only the first N characters (0: all)")
    a("--sample-len", type=int, default=400, help="characters to generate (default 400)")
    a("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    a("--top-k", type=int, default=10, help="sample among the k likeliest (default 10)")
    a("--prompt", default="ROMEO:\n", help="text to continue")
    a("--checkpoint", default="char_gpt.safetensors", help="checkpoint path ('' for none)")
    a("--sample-only", action="store_true", help="load --checkpoint and only generate text")
    a("--seed", type=int, default=0, help="random seed (default 0)")
    a(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1; 0 keeps NumPy's default): for these small matrices one "
        "thread is about as fast as two, and far faster when other jobs share the cores",
    )
    a("--log-interval", type=int, default=20, help="steps between log lines (default 20)")
    a("--quiet", action="store_true", help="print nothing")
    a("--quick", action="store_true", help="a tiny model for a few steps (the smoke test)")
    return p


def _quick(args: argparse.Namespace) -> None:
    args.block_size, args.d_model, args.n_layer, args.n_head = 16, 32, 2, 2
    args.batch_size, args.max_steps, args.warmup, args.eval_interval = 16, 30, 5, 15
    args.eval_batches, args.text_chars, args.sample_len = 2, 50_000, 40


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or with ``--sample-only`` load) the model and generate a sample; returns
    ``{"train_loss", "val_loss", "best_val_loss", "first_loss", "steps", "seconds",
    "tokens_per_second", "history", "sample", "checkpoint", "parameters"}``.

    Example:
        >>> main(["--quick", "--quiet", "--checkpoint", ""])["steps"]  # doctest: +SKIP
        30
    """
    args = build_parser().parse_args(argv)
    if args.quick:
        _quick(args)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    if args.threads > 0:
        try:
            ember.set_num_threads(args.threads)
        except ImportError:  # ember.set_num_threads needs threadpoolctl
            log("threadpoolctl is not installed: --threads ignored (OPENBLAS_NUM_THREADS=1 "
                "in the environment does the same)")  # fmt: skip
    ember.manual_seed(args.seed)

    text = load_shakespeare()
    if args.text_chars:
        text = text[: args.text_chars]
    vocab = sorted(set(text))
    n_val = max(int(len(text) * args.val_fraction), args.block_size + 1)
    train_ds = CharDataset(text[:-n_val], args.block_size, vocab=vocab)
    val_ds = CharDataset(text[-n_val:], args.block_size, vocab=vocab)
    # a fixed, evenly spread set of validation windows: every evaluation sees the same text
    n_eval = min(len(val_ds), args.eval_batches * 64)
    val_idx = np.linspace(0, len(val_ds) - 1, n_eval).astype(int).tolist()
    val_loader = DataLoader(Subset(val_ds, val_idx), batch_size=64)
    train_loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, drop_last=True)

    model = GPT(len(vocab), args.block_size, args.d_model, args.n_layer, args.n_head, args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{len(text):,} characters, vocabulary {len(vocab)}, {n_params:,} parameters")

    # weight decay on the matrices only (not on biases, LayerNorm gains, the position table)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "pos_emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "pos_emb" in n]
    optimizer = ember.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay}],
        lr=args.lr,
        betas=(0.9, 0.99),
        weight_decay=0.0,
    )
    start = time.perf_counter()

    def lr_lambda(step: int) -> float:
        progress = max(step / args.max_steps, (time.perf_counter() - start) / args.max_seconds)
        return warmup_cosine(progress, step, args.warmup, args.min_lr_ratio)

    scheduler = LambdaLR(optimizer, lr_lambda)

    if args.sample_only:
        ember.io.load_checkpoint(args.checkpoint, model=model)
        val_loss = evaluate(model, val_loader)
        ids = generate(model, train_ds.encode(args.prompt), args.sample_len, args.temperature,
                       args.top_k, args.seed)  # fmt: skip
        sample = train_ds.decode(ids)
        log(f"val loss {val_loss:.3f}\n{sample}")
        return {"val_loss": val_loss, "sample": sample, "checkpoint": args.checkpoint}

    history: list[tuple[int, float, float]] = []  # (step, seconds, val loss)
    first_loss = train_loss = math.nan
    best_val = math.inf
    step, tokens = 0, 0
    model.train()
    start = time.perf_counter()
    while step < args.max_steps:
        for x, y in train_loader:
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            tokens += y.numel()
            loss_value = float(loss)
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss became {loss_value} at step {step}")
            first_loss = loss_value if step == 1 else first_loss
            # an exponential moving average keeps the logged training loss readable
            train_loss = loss_value if step == 1 else 0.9 * train_loss + 0.1 * loss_value
            elapsed = time.perf_counter() - start
            out_of_time = elapsed >= args.max_seconds
            done = step >= args.max_steps or out_of_time
            if step % args.log_interval == 0:
                log(f"step {step:5d}  loss {train_loss:.3f}  lr {scheduler.get_last_lr()[0]:.2e}"
                    f"  {tokens / elapsed:,.0f} chars/s  {elapsed:5.0f}s")  # fmt: skip
            if step % args.eval_interval == 0 or done:
                val_loss = evaluate(model, val_loader)
                best_val = min(best_val, val_loss)
                history.append((step, time.perf_counter() - start, val_loss))
                log(f"step {step:5d}  val loss {val_loss:.3f}  ({history[-1][1]:.0f}s)")
            if done:
                break
        else:
            continue  # the loader ran out: start another epoch
        break
    seconds = time.perf_counter() - start

    if args.checkpoint:
        ember.io.save_checkpoint(
            args.checkpoint,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            step=step,
            config={k: getattr(args, k) for k in ("block_size", "d_model", "n_layer", "n_head")},
        )
        log(f"saved {args.checkpoint}")
    ids = generate(model, train_ds.encode(args.prompt), args.sample_len, args.temperature,
                   args.top_k, args.seed)  # fmt: skip
    sample = train_ds.decode(ids)
    log("-" * 60 + "\n" + sample + "\n" + "-" * 60)
    return {
        "train_loss": train_loss,
        "val_loss": history[-1][2],
        "best_val_loss": best_val,
        "first_loss": first_loss,
        "steps": step,
        "seconds": seconds,
        "tokens_per_second": tokens / seconds,
        "history": history,
        "sample": sample,
        "checkpoint": args.checkpoint or None,
        "parameters": n_params,
    }


if __name__ == "__main__":
    main()
