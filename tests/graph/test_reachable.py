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
