"""Graph breaks: reading a tensor's value inside a compiled function never bakes it in; the
function falls back to eager with one warning naming the user's file and line, or raises
that message under fullgraph=True."""

from __future__ import annotations

import inspect
import warnings

import pytest

import ember
from ember.graph import GraphBreak, GraphBreakWarning, compile

HERE = __file__


def branch(x):
    if x.sum() > 0:  # BREAK
        return x * 2
    return x * -1


def item(x):
    scale = x.max().item()  # BREAK
    return x / scale


def to_numpy(x):
    arr = x.detach().numpy()  # BREAK
    return x + float(arr[0])


def to_list(x):
    values = x.tolist()  # BREAK
    return x * len(values)


def to_float(x):
    return x * float(x[0])  # BREAK


def loop(x):
    n = 0
    while (x > 1).any():  # BREAK
        x = x / 2
        n += 1
    return x


def index(x):
    k = int(x.argmax())  # BREAK
    return x[k:]


def returned_item(x):
    return (x * x).sum().item()  # BREAK


CASES = {
    "bool": (branch, "bool()"),
    "item": (item, "item()"),
    "numpy": (to_numpy, "numpy()"),
    "tolist": (to_list, "tolist()"),
    "float": (to_float, "item()"),
    "while": (loop, "bool()"),
    "int": (index, "item()"),
    "returned item": (returned_item, "item()"),
}


def _break_line(fn) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, text in enumerate(lines) if "# BREAK" in text)


def _inputs():
    return [ember.tensor([3.0, -1.0, 2.0]), ember.tensor([-4.0, 1.0, 0.5]), ember.ones(3)]


@pytest.mark.parametrize("name", list(CASES))
def test_falls_back_to_eager_with_one_warning(name):
    fn, what = CASES[name]
    cf = compile(fn)
    line = _break_line(fn)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x in _inputs():
            got, want = cf(x), fn(x)
            if isinstance(want, float):
                assert got == want
            else:
                assert got.tolist() == want.tolist()  # values read live, never baked
    breaks = [w for w in caught if issubclass(w.category, GraphBreakWarning)]
    assert len(breaks) == 1
    w = breaks[0]
    assert w.filename == HERE and w.lineno == line
    msg = str(w.message)
    assert f"{what} reads a tensor's value at {HERE}:{line}" in msg
    assert "# BREAK" in msg and f"ember.compile({fn.__name__})" in msg
    info = cf.cache_info()
    assert info.graph_breaks == 1 and info.eager_calls == 2 and info.size == 0


@pytest.mark.parametrize("name", list(CASES))
def test_fullgraph_raises_the_same_message(name):
    fn, what = CASES[name]
    cf = compile(fn, fullgraph=True)
    with pytest.raises(GraphBreak) as info:
        cf(_inputs()[0])
    assert f"{what} reads a tensor's value at {HERE}:{_break_line(fn)}" in str(info.value)
    assert info.value.loc.lineno == _break_line(fn)


def test_break_inside_a_library_call_names_the_users_line():
    def f(x):
        return ember.tensor(x.tolist()) * 2  # BREAK

    cf = compile(f, fullgraph=True)
    with pytest.raises(GraphBreak, match=f"{HERE}:{_break_line(f)}"):
        cf(ember.ones(2))


def test_a_break_after_backward_leaves_the_step_done_eagerly():
    w = ember.ones(2, requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.5)

    def step(x):
        opt.zero_grad()
        loss = (w * x).sum()
        loss.backward()
        opt.step()
        return loss.item()  # BREAK

    cf = compile(step)
    with pytest.warns(GraphBreakWarning):
        assert cf(ember.ones(2)) == 2.0
    assert cf(ember.ones(2)) == 1.0  # eager from now on: the parameters keep training
    assert w.tolist() == [0.0, 0.0]
