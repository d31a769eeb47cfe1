"""What a compiled function can reach (ember/graph/reachable.py): the modules it finds and
the guards it builds from them."""

from __future__ import annotations

import doctest

import ember
import ember.nn as nn
from ember.graph import reachable
from ember.graph.ir import Graph
from ember.graph.reachable import Reachable


def _guard(reach: Reachable, desc: str):
    return next(fn for fn, d in reach.guards(Graph("f")) if d == desc)


def test_modules_in_arguments_closures_and_globals_are_found():
    inner = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    outer = nn.Linear(2, 1)

    def fn(x, extra):
        return outer(inner(x)) + extra[0](x).sum()

    reach = Reachable(fn, (ember.ones(1, 2), [nn.Linear(2, 3)]), {})
    labels = set(reach.labels.values())
    assert {"outer.weight", "inner.0.bias", "arg1[0].weight"} <= labels


def test_the_slot_guard_follows_nested_submodules():
    # (the slots of parameters are guarded for those a graph captures: test_compile.py)
    net = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.Linear(2, 1))
    guard = _guard(Reachable(net, (), {}), "module parameters and submodules")
    assert guard()
    net[0][0] = nn.Linear(2, 2)  # a nested submodule slot
    assert not guard()


def test_a_container_that_builds_a_new_table_is_read_anew():
    net = nn.ModuleList([nn.Linear(2, 2)])
    guard = _guard(Reachable(net, (), {}), "module parameters and submodules")
    net.append(nn.ReLU())  # a new slot: the old ones still hold what they held
    assert guard()
    net.insert(0, nn.ReLU())  # a new table, whose slot "0" holds another module
    assert not guard()


def test_the_flag_guard_follows_train_and_eval():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1))
    guard = _guard(Reachable(net, (), {}), "module training flags")
    assert guard()
    net[1].eval()
    assert not guard()
    net[1].train()
    assert guard()


def test_doctests_of_the_module():
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in doctest.DocTestFinder().find(reachable, reachable.__name__):
        runner.run(t)
    assert runner.failures == 0 and runner.tries >= 4


def test_a_guard_is_skipped_until_a_module_changes():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    guard = _guard(Reachable(net, (), {}), "module parameters and submodules")
    assert guard()
    calls = []
    real = net.__dict__["_modules"]

    class Spy(nn.tables.Table):
        def __getitem__(self, key):
            calls.append(key)
            return real[key]

    net.__dict__["_modules"] = Spy(real)  # (not counted: a write past the module's API)
    assert guard() and calls == []  # nothing changed since it passed: not checked again
    nn.tables.changed()
    assert guard() and calls  # checked again


def test_every_write_to_a_module_counts_as_a_change():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    lin = net[0]
    writes = [
        lambda: setattr(lin, "weight", nn.Parameter(ember.ones(2, 2))),
        lambda: lin._parameters.__setitem__("bias", nn.Parameter(ember.ones(2))),
        lambda: lin._parameters.pop("bias"),
        lambda: lin._parameters.update(bias=nn.Parameter(ember.ones(2))),
        lambda: lin._parameters.setdefault("extra", None),
        lambda: lin._parameters.__delitem__("extra"),
        lambda: net._modules.__ior__({}),
        lambda: lin.register_buffer("b", ember.ones(1)),
        lambda: delattr(lin, "b"),
        lambda: net.eval(),
        lambda: net.__setitem__(1, nn.Tanh()),
        lambda: net.__delitem__(1),  # (Sequential renumbers: a new table)
        lambda: net.append(nn.ReLU()),
        lambda: nn.ModuleList([nn.ReLU()]).insert(0, nn.Tanh()),
    ]
    for write in writes:
        before = nn.tables.changes()
        write()
        assert nn.tables.changes() > before, write
    assert all(type(m._parameters) is nn.tables.Table for m in net.modules())
    assert all(type(m._modules) is nn.tables.Table for m in net.modules())


def test_a_compiled_call_sees_a_parameter_swapped_through_the_table():
    net = nn.Sequential(nn.Linear(3, 2)).eval()
    fc = ember.compile(net)
    x = ember.ones(1, 3)
    with ember.no_grad():
        for _ in range(3):
            fc(x)
        net[0]._parameters["weight"] = nn.Parameter(ember.zeros(2, 3))
        net[0]._parameters["bias"] = nn.Parameter(ember.ones(2))
        assert fc(x).tolist() == [[1.0, 1.0]]
        net[0].train()
        net[0].training = False
        assert fc(x).tolist() == [[1.0, 1.0]]


def test_a_module_with_plain_dict_tables_is_checked_every_call():
    net = nn.Linear(2, 2)
    net.__dict__["_parameters"] = dict(net._parameters)  # writes to it are not counted
    guard = _guard(Reachable(net, (), {}), "module training flags")
    assert guard()
    net.__dict__["training"] = False  # past __setattr__: not counted, seen all the same
    assert not guard()
