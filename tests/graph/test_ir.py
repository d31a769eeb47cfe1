"""The IR: building, printing, validating, editing, copying, visualising."""

from __future__ import annotations

import numpy as np
import pytest

from ember.graph.ir import Graph, IRError, Node, SourceLoc, Sym, Update, topological

F32 = np.float32


def small() -> Graph:
    g = Graph("f")
    x = g.add_input((2, 3), F32, label="x")
    w = g.add_captured((3, 4), F32, ref=None, label="w")
    c = g.add_const(np.ones(4, F32))
    y = g.add_node("matmul", [x, w], {}, (2, 4), F32, source=SourceLoc("t.py", 3, "y = x @ w"))
    z = g.add_node("add", [y, c], {}, (2, 4), F32)
    s = g.add_node("sum", [z], {"dim": None, "keepdim": False, "dtype": None}, (), F32)
    g.outputs = [s]
    return g


def test_build_print_and_validate():
    g = small()
    g.validate()
    text = str(g)
    assert text.splitlines()[0] == "graph f(%x: f32[2,3]):"
    assert "%p2: f32[3,4] = captured w" in text
    assert "= matmul(%x, %p2)  # t.py:3" in text
    assert "%v6: f32[] = sum(%v5) {dim=None, keepdim=False, dtype=None}" in text
    assert "%c3: f32[4] = const [1., 1., 1., 1.]" in text
    assert text.splitlines()[-1] == "  return (%v6)"
    assert g.op_counts() == {"matmul": 1, "add": 1, "sum": 1}
    assert repr(g) == "<Graph f: 1 inputs, 3 nodes>"


def test_users_replace_remove_insert():
    g = small()
    mm, add, total = g.nodes
    users = g.users()
    assert users[mm.output] == [add] and users[total.output] == []
    neg = g.make_node("neg", [mm.output], {}, (2, 4), F32)
    g.insert_node(1, neg)
    assert g.replace_uses(mm.output, neg.output) == 2  # add and... neg itself
    neg.inputs = [mm.output]  # keep neg reading the matmul
    g.validate()
    assert add.inputs[0] is neg.output
    g.replace_uses(neg.output, mm.output)
    g.remove_node(neg)
    g.validate()
    assert topological(g.nodes)


@pytest.mark.parametrize(
    "breaker, message",
    [
        (lambda g: g.nodes.reverse(), "used before it is defined"),
        (lambda g: setattr(g.nodes[0], "op", "no_such_op"), "not in the registry"),
        (lambda g: g.nodes.append(g.nodes[0]), "defined twice"),
        (lambda g: setattr(g.nodes[0], "mutates", (5,)), "mutates position 5"),
        (lambda g: setattr(g.nodes[0], "aliases", (0, 3)), "aliases position 3"),
        (lambda g: g.outputs.append(Graph().add_input((1,), F32)), "not defined in this graph"),
        (lambda g: g.updates.append(Update(g.nodes[0].output, g.nodes[1].output)), "target"),
        (lambda g: g.updates.append(Update(g.captured[0], None, "copy")), "has no value"),
        (lambda g: setattr(g.nodes[2], "out_slot", 0), "escapes"),
        (lambda g: setattr(g.inputs[0], "shape", (2, 1.5)), "malformed shape"),
        (lambda g: setattr(g.constants[0], "data", None), "has no data"),
    ],
)
def test_validate_catches(breaker, message):
    g = small()
    breaker(g)
    with pytest.raises(IRError, match=message):
        g.validate()


def test_escaping_follows_views_and_mutation():
    g = Graph()
    x = g.add_input((4,), F32)
    a = g.add_node("neg", [x], {}, (4,), F32)
    v = g.add_node("reshape", [a], {"shape": (2, 2)}, (2, 2), F32, aliases=(0,))
    b = g.add_node("neg", [x], {}, (4,), F32)
    p = g.add_captured((4,), F32, ref=None)
    g.add_node("sgd_update", [p, b, None, 0.1], {}, (4,), F32, pure=False, mutates=(0,))
    g.outputs = [v]
    esc = g.escaping()
    assert v in esc and a in esc and p in esc and b not in esc
    g.nodes[2].out_slot = 0
    g.validate()
    g.nodes[0].out_slot = 1
    with pytest.raises(IRError, match="escapes"):
        g.validate()


def test_copy_is_independent():
    g = small()
    g.updates.append(Update(g.captured[0], g.nodes[1].output, "copy"))
    h = g.copy()
    h.validate()
    assert str(h) == str(g)
    h.nodes[0].attrs["x"] = 1
    h.nodes.pop()
    assert "x" not in g.nodes[0].attrs and len(g.nodes) == 3
    assert h.updates[0].target is h.captured[0]
    new = h.add_node("neg", [h.inputs[0]], {}, (2, 3), F32)
    assert new.id not in {v.id for v in g.values()}


def test_sym_sizes_in_a_graph():
    g = Graph()
    x = g.add_input((Sym(), 3), F32, label="x")
    g.outputs = [x]
    g.validate()
    assert "f32[B,3]" in str(g) and x.numel is None


def test_node_flags_and_update_repr():
    g = small()
    n = g.nodes[0]
    n.pure, n.mutates = False, (0,)
    assert n.has_effects and "[impure; mutates 0]" in n.format()
    assert repr(Update(g.captured[0], None, "grad")) == "<Update %p2.grad <- None>"
    with pytest.raises(ValueError):
        Update(g.captured[0], None, "move")
    assert Node("neg", [1.0], {}).value_inputs == []


def test_to_dot_and_summary():
    g = small()
    dot = g.to_dot()
    assert dot.startswith('digraph "f" {') and dot.rstrip().endswith("}")
    assert '"matmul\\nf32[2,4]\\nt.py:3"' in dot
    assert dot.count("->") == 6  # 5 data edges and one output edge
    text = g.summary()
    assert text.splitlines()[0] == (
        "graph f: 3 nodes, 1 inputs, 1 captured (12 elements), 1 constants"
    )
    assert "ops: add x1, matmul x1, sum x1" in text
    assert "w" in text and "12" in text
