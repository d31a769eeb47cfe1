"""Containers: Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict."""

from collections import OrderedDict

import pytest

import ember
from ember import nn

from .test_module import Scale


# -- containers ------------------------------------------------------------------------------
def test_sequential_indexing_slicing_and_editing():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c
    assert list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules) == ["1", "2"]  # like torch, slices keep their keys
    with pytest.raises(IndexError, match="out of range"):
        seq[3]  # noqa: B018
    seq[1] = nn.Identity()
    assert isinstance(seq[1], nn.Identity)
    del seq[0]
    assert list(seq._modules) == ["0", "1"] and seq[1] is c
    seq.append(a)
    seq.insert(0, b)
    assert list(seq) == [b, seq[1], c, a]
    assert seq.pop(0) is b and len(seq) == 3
    seq.extend([nn.ReLU()])
    assert len(seq) == 4
    both = nn.Sequential(a) + nn.Sequential(c)
    assert list(both) == [a, c]


def test_sequential_forward_and_ordered_dict():
    seq = nn.Sequential(OrderedDict([("scale", Scale()), ("act", nn.Identity())]))
    nn.init.constant_(seq.scale.w, 2.0)
    assert seq(ember.ones(3)).tolist() == [2.0, 2.0, 2.0]
    assert [n for n, _ in seq.named_parameters()] == ["scale.w", "scale.b"]
    assert nn.Sequential()(ember.ones(1)).tolist() == [1.0]


def test_module_list():
    layers = nn.ModuleList([Scale(), Scale()])
    assert len(layers) == 2 and len(list(layers.parameters())) == 4
    layers.append(Scale())
    layers += [Scale()]
    assert len(layers) == 4
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    first = layers[0]
    layers.insert(0, nn.Identity())
    assert layers[1] is first and list(layers._modules) == ["0", "1", "2", "3", "4"]
    del layers[0]
    assert layers[0] is first
    assert layers.pop(-1) is not first and len(layers) == 3
    with pytest.raises(IndexError):
        layers[10]  # noqa: B018
    with pytest.raises(TypeError, match="iterable"):
        layers.extend(Scale())


def test_module_dict():
    d = nn.ModuleDict({"a": Scale(), "b": nn.Identity()})
    assert list(d) == ["a", "b"] and "a" in d and len(d) == 2
    d["c"] = nn.ReLU()
    d.update([("e", nn.Tanh())])
    assert list(d.keys()) == ["a", "b", "c", "e"]
    assert isinstance(d.pop("b"), nn.Identity) and "b" not in d
    assert [n for n, _ in d.named_parameters()] == ["a.w", "a.b"]
    d.clear()
    assert len(d) == 0


def test_parameter_list_and_dict():
    pl = nn.ParameterList([ember.zeros(2), nn.Parameter(ember.ones(3))])
    assert len(pl) == 2 and all(isinstance(p, nn.Parameter) for p in pl)
    pl.append(ember.ones(1))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert pl[-1].shape == (1,)
    assert "(0): Parameter containing: [ember.float32 of size 2" in repr(pl)
    pd = nn.ParameterDict({"s": ember.ones(1)})
    pd["t"] = ember.zeros(2)
    assert list(pd) == ["s", "t"] and isinstance(pd["t"], nn.Parameter)
    assert [n for n, _ in pd.named_parameters()] == ["s", "t"]
    del pd["s"]
    assert list(pd.keys()) == ["t"]
    net = nn.Module()
    net.ps = pl
    assert len(net.state_dict()) == 3
