"""The tracer: inputs, captured tensors and constants, in-place updates, gradients,
optimizer updates, random ops, source lines."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.graph.trace import GraphBreak, Tracer, trace

HERE = __file__


def test_inputs_captured_and_constants():
    w = ember.ones(3)

    def f(x):
        c = ember.tensor([1.0, 2.0, 3.0])  # a temporary made from Python data
        return (x * w + c).sum()

    g, out = trace(f, ember.arange(3.0))
    g.validate()
    assert out.item() == 9.0
    assert [v.kind for v in g.inputs] == ["input"]
    assert len(g.captured) == 1 and g.captured[0].ref is w
    assert len(g.constants) == 1 and g.constants[0].data.tolist() == [1.0, 2.0, 3.0]
    assert [n.op for n in g.nodes] == ["mul", "add", "sum"]
    assert g.outputs == [g.nodes[-1].output]


def test_aliases_resolve_to_one_value():
    def f(x):
        y = x * 2
        return y.detach() + y.data + y

    g, _ = trace(f, ember.ones(2))
    mul = g.nodes[0].output
    assert [n.op for n in g.nodes] == ["mul", "add", "add"]
    assert g.nodes[1].inputs == [mul, mul] and g.nodes[2].inputs == [g.nodes[1].output, mul]
    assert not g.captured and not g.constants


def test_views_are_marked():
    g, _ = trace(lambda x: x.reshape(3, 2).transpose(0, 1) * 2, ember.ones(2, 3))
    ops = {n.op: n for n in g.nodes}
    assert ops["reshape"].aliases == (0,) and ops["mul"].aliases == ()


def test_source_lines_point_at_user_code():
    def f(x):
        return x.exp()  # the exp line

    g, _ = trace(f, ember.ones(1))
    src = g.nodes[0].source
    assert src.filename == HERE and src.line == "return x.exp()  # the exp line"
    assert src.function == "f"


def test_inplace_on_captured_becomes_update_on_temporary_does_not():
    buf = ember.zeros(3)

    def f(x):
        tmp = ember.zeros(3)
        with ember.no_grad():
            buf.add_(x)
            tmp += x
        return tmp * 2

    g, out = trace(f, ember.ones(3))
    g.validate()
    assert buf.tolist() == [1.0, 1.0, 1.0] and out.tolist() == [2.0, 2.0, 2.0]
    assert len(g.updates) == 1
    u = g.updates[0]
    assert u.kind == "copy" and u.target.ref is buf and u.value.producer.op == "add"
    assert g.constants and g.constants[0].data.tolist() == [0.0, 0.0, 0.0]


def test_inplace_write_into_a_view_breaks():
    w = ember.zeros(2, 3)

    def f(x):
        with ember.no_grad():
            v = w[0]
            v.add_(x)
        return x

    with pytest.raises(GraphBreak, match="in-place write into a view"):
        trace(f, ember.ones(3))


def test_backward_and_optimizer_step_are_recorded():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = ember.optim.Adam([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = (w * x).sum()
        loss.backward()
        opt.step()
        return loss

    tracer = Tracer("step")
    x = ember.ones(2)
    tracer.add_input(x, "x")
    with tracer:
        loss = step(x)
    g = tracer.finish(loss)
    g.validate()
    upd = [n for n in g.nodes if n.op == "adam_update"]
    assert len(upd) == 1 and not upd[0].pure and upd[0].mutates == (0, 2, 3)
    assert [v.label for v in g.scalars] == ["lr", "step"]
    assert [u.kind for u in g.updates] == ["grad"] and g.updates[0].target.ref is w
    state = opt.state[w]
    captured = {id(v.ref) for v in g.captured}
    assert id(state["exp_avg"]) in captured and id(state["exp_avg_sq"]) in captured
    assert tracer.did_backward
    # the lr getter reads the group live; the step getter increments the counter
    lr, step_count = (v.ref for v in g.scalars)
    opt.param_groups[0]["lr"] = 0.5
    assert lr() == 0.5 and step_count() == 2.0 and float(state["step"]) == 2.0


def test_random_ops_are_impure():
    def f(x):
        return ember.nn.functional.dropout(x, 0.5)

    g, _ = trace(f, ember.ones(4, 4))
    mask = g.nodes[0]
    assert mask.op == "dropout_mask" and not mask.pure and mask.has_effects


def test_value_reads_break_under_fullgraph():
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    with pytest.raises(GraphBreak, match=r"bool\(\) reads a tensor's value at .*test_trace.py"):
        trace(f, ember.ones(2))


def test_raw_array_arguments_become_constants():
    from ember.ops.registry import REGISTRY, apply

    arr = np.array([1.0, 2.0])
    g, out = trace(lambda x: apply(REGISTRY["add"], x, arr), ember.ones(2))
    assert out.tolist() == [2.0, 3.0]
    assert g.constants[0].data.tolist() == [1.0, 2.0]


def test_intermediates_are_freed_during_the_trace_and_reused_ids_stay_apart():
    import weakref

    dead = []

    def f(x):
        y = x
        for _ in range(50):  # each temporary dies at once, and its id is often reused
            t = y * 2.0
            weakref.finalize(t._data, dead.append, 1)
            y = t - y  # == y: each step reads the new temporary and the previous value
        freed.append(len(dead))
        return y + x

    x = ember.arange(4.0)
    freed: list = []
    g, out = trace(f, x)
    g.validate()
    assert freed[0] >= 40  # freed while tracing (the tracer keeps no array alive)
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert not g.captured and not g.constants  # no new array was taken for a dead one
    assert [n.op for n in g.nodes] == ["mul", "sub"] * 50 + ["add"]
    fast = ember.compile(f)
    for _ in range(3):
        assert fast(x).tolist() == [0.0, 2.0, 4.0, 6.0]
    assert fast.cache_info().traces == 1
