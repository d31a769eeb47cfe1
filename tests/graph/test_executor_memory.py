"""The generated program lets each array go after the last line that reads it (as eager mode
would free it), and keeps what it returns or writes back."""

from __future__ import annotations

import numpy as np

import ember
from ember.graph.executor import Program
from ember.graph.ir import Graph


def _drops(code: str) -> list[tuple[str, list[str]]]:
    """(the line before, the names dropped) for each ``del`` line of ``code``."""
    lines = [ln.strip() for ln in code.splitlines()]
    return [
        (lines[i - 1], ln[4:].split(", ")) for i, ln in enumerate(lines) if ln.startswith("del ")
    ]


def test_each_value_is_dropped_after_its_last_read():
    g = Graph("chain")
    x = g.add_input((3,), np.float64, label="x")
    a = g.add_node("exp", [x], {}, (3,), np.float64)
    b = g.add_node("neg", [a], {}, (3,), np.float64)
    c = g.add_node("add", [b, x], {}, (3,), np.float64)
    g.outputs = [c]
    prog = Program(g)
    drops = _drops(prog.code)
    assert [names for _, names in drops] == [[a.name], sorted([b.name, "x"])]
    assert drops[0][0].startswith(f"{b.name} = ") and drops[1][0].startswith(f"{c.name} = ")
    assert prog.run([np.zeros(3)], [])[0].tolist() == [-1.0, -1.0, -1.0]


def test_a_training_step_keeps_what_it_returns_and_writes_back():
    w = ember.ones(4, requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.5)

    def step(x):
        opt.zero_grad()
        y = (w * x).exp()
        loss = (y * y).sum()
        loss.backward()
        opt.step()
        return loss, y

    fast = ember.compile(step)
    x = ember.full((4,), 0.1)
    ref_w = ember.ones(4, requires_grad=True)
    ref_opt = ember.optim.SGD([ref_w], lr=0.5)
    for _ in range(3):
        loss, y = fast(x)
        ref_opt.zero_grad()
        ref_y = (ref_w * x).exp()
        ref_loss = (ref_y * ref_y).sum()
        ref_loss.backward()
        ref_opt.step()
        np.testing.assert_allclose(loss.item(), ref_loss.item(), rtol=1e-6)
        np.testing.assert_allclose(y.detach().numpy(), ref_y.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(w.detach().numpy(), ref_w.detach().numpy(), rtol=1e-6)
        np.testing.assert_allclose(w.grad.numpy(), ref_w.grad.numpy(), rtol=1e-6)
    assert fast.cache_info().traces == 1 and "del " in fast.code


def test_planned_buffers_start_on_a_cache_line():
    g = Graph("buffers")
    x = g.add_input((64, 32), np.float32, label="x")
    a = g.add_node("exp", [x], {}, (64, 32), np.float32)
    a.producer.out_slot = 0
    g.meta["buffers"] = {0: ((64, 32), np.dtype(np.float32))}
    g.outputs = [
        g.add_node("sum", [a], {"dim": None, "keepdim": False, "dtype": None}, (), np.float32)
    ]
    prog = Program(g)
    (buf,) = prog.buffers(None)
    assert buf.shape == (64, 32) and buf.__array_interface__["data"][0] % 64 == 0
    x0 = np.full((64, 32), 0.5, np.float32)
    np.testing.assert_allclose(prog.run([x0], [])[0], np.exp(x0).sum(), rtol=1e-5)
