"""Module mechanics: registration, tree walks, modes, to(), state_dict, hooks, repr,
containers and Parameter (PyTorch as the oracle where its behaviour is the spec)."""

import copy
from collections import OrderedDict

import numpy as np
import pytest

import ember
from ember import nn

torch = pytest.importorskip("torch")
tnn = torch.nn


class Scale(nn.Module):
    """A module that needs no functional op: ``x * w + b`` plus a step buffer."""

    def __init__(self, n=3):
        super().__init__()
        self.w = nn.Parameter(ember.ones(n))
        self.b = nn.Parameter(ember.zeros(n))
        self.register_buffer("steps", ember.zeros(1, dtype=ember.int64))
        self.register_buffer("cache", ember.zeros(n), persistent=False)

    def forward(self, x):
        return x * self.w + self.b


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Scale(3)
        self.inner = nn.Sequential(Scale(3), Scale(3))
        self.head = nn.Parameter(ember.ones(2))

    def forward(self, x):
        return self.inner(self.a(x))


# -- Parameter -------------------------------------------------------------------------------
def test_parameter_is_a_tensor_leaf_that_requires_grad():
    t = ember.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert isinstance(p, nn.Parameter) and isinstance(p, ember.Tensor)
    assert p.requires_grad and p.is_leaf
    assert p._data is t._data  # shares memory, like torch
    assert not isinstance(p * 2, nn.Parameter)  # ops return plain tensors
    assert type(p.detach()) is ember.Tensor
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)


def test_parameter_from_non_leaf_is_cut_from_the_graph():
    x = ember.ones(2, requires_grad=True)
    p = nn.Parameter(x * 2)
    assert p.is_leaf and p.grad_fn is None and p.requires_grad


def test_parameter_repr_matches_torch():
    p = nn.Parameter(ember.tensor([1.0, 2.0], device="cpu"))
    tp = tnn.Parameter(torch.tensor([1.0, 2.0]))
    assert repr(p) == repr(tp)
    assert repr(p).startswith("Parameter containing:\n")


def test_parameter_of_integers_cannot_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(ember.tensor([1, 2]))
    assert not nn.Parameter(ember.tensor([1, 2]), requires_grad=False).requires_grad


def test_parameter_deepcopy_keeps_class_values_and_grad():
    p = nn.Parameter(ember.tensor([1.0, 2.0]))
    p.grad = ember.tensor([3.0, 4.0])
    q = copy.deepcopy(p)
    assert isinstance(q, nn.Parameter) and q is not p and q.requires_grad
    assert q.tolist() == [1.0, 2.0] and q.grad.tolist() == [3.0, 4.0]
    q.data._data[0] = 9
    assert p.tolist() == [1.0, 2.0]


# -- registration ----------------------------------------------------------------------------
def test_setattr_registers_parameters_buffers_and_modules():
    m = Scale()
    assert list(m._parameters) == ["w", "b"]
    assert list(m._buffers) == ["steps", "cache"]
    assert m.w is m._parameters["w"] and m.steps is m._buffers["steps"]
    m.child = nn.Identity()
    assert "child" in m._modules and m.child is m._modules["child"]
    m.plain = 3
    assert m.plain == 3 and "plain" in m.__dict__


def test_reassigning_registered_names():
    m = Scale()
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = ember.ones(3)
    m.w = None
    assert m.w is None and "w" in m._parameters
    assert [n for n, _ in m.named_parameters()] == ["b"]
    m.steps = ember.ones(1)  # a buffer takes a new tensor
    assert m.steps.tolist() == [1.0]
    with pytest.raises(TypeError, match="buffer 'steps'"):
        m.steps = 5
    # a parameter replacing a buffer name moves it to the parameters
    m.steps = nn.Parameter(ember.ones(1))
    assert "steps" in m._parameters and "steps" not in m._buffers


def test_register_checks_names_and_types():
    m = nn.Module()
    with pytest.raises(KeyError, match='contain ".", got: a.b'):
        m.register_parameter("a.b", nn.Parameter(ember.ones(1)))
    with pytest.raises(KeyError, match="empty"):
        m.register_buffer("", ember.ones(1))
    with pytest.raises(TypeError, match="nn.Parameter or None"):
        m.register_parameter("w", ember.ones(1))
    with pytest.raises(TypeError, match="Tensor or None"):
        m.register_buffer("b", [1, 2])
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("train", ember.ones(1))
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("x", 3)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(ember.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_getattr_delattr_dir():
    m = Scale()
    with pytest.raises(AttributeError, match="'Scale' object has no attribute 'nope'"):
        m.nope  # noqa: B018
    assert {"w", "b", "steps"} <= set(dir(m))
    del m.w
    assert "w" not in m._parameters
    with pytest.raises(AttributeError):
        m.w  # noqa: B018
    m.extra = 1
    del m.extra
    assert not hasattr(m, "extra")


def test_module_init_rejects_arguments_and_missing_forward():
    with pytest.raises(TypeError):
        nn.Module(3)
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(ember.ones(1))


# -- walking the tree ------------------------------------------------------------------------
def test_named_parameters_buffers_and_modules_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["head", "a.w", "a.b", "inner.0.w", "inner.0.b", "inner.1.w", "inner.1.b"]
    assert [n for n, _ in net.named_parameters(prefix="net", recurse=False)] == ["net.head"]
    assert [n for n, _ in net.named_buffers()] == [
        "a.steps", "a.cache", "inner.0.steps", "inner.0.cache", "inner.1.steps", "inner.1.cache",
    ]  # fmt: skip
    assert [n for n, _ in net.named_modules()] == ["", "a", "inner", "inner.0", "inner.1"]
    assert [n for n, _ in net.named_children()] == ["a", "inner"]
    assert len(list(net.parameters())) == 7 and len(list(net.buffers(recurse=False))) == 0


def test_walks_match_torch_for_the_same_tree():
    em = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    th = tnn.Sequential(tnn.Linear(2, 3), tnn.Sequential(tnn.ReLU(), tnn.Linear(3, 1)))
    assert [n for n, _ in em.named_parameters()] == [n for n, _ in th.named_parameters()]
    assert [n for n, _ in em.named_modules()] == [n for n, _ in th.named_modules()]
    assert list(em.state_dict()) == list(th.state_dict())


def test_shared_modules_and_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(net.parameters())) == 2
    assert [n for n, _ in net.named_modules()] == ["", "0", "1"]
    assert len(list(net.named_modules(remove_duplicate=False))) == 4
    assert len(list(net.named_parameters(remove_duplicate=False))) == 4
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    tied = Scale()
    tied.b = tied.w
    assert [n for n, _ in tied.named_parameters()] == ["w"]


def test_get_submodule_parameter_buffer():
    net = Net()
    assert net.get_submodule("inner.1") is net.inner[1]
    assert net.get_submodule("") is net
    assert net.get_parameter("inner.0.w") is net.inner[0].w
    assert net.get_buffer("a.steps") is net.a.steps
    with pytest.raises(AttributeError, match="no submodule `x`"):
        net.get_submodule("inner.x")
    with pytest.raises(AttributeError, match="no parameter `q`"):
        net.get_parameter("a.q")


def test_deep_nesting_walks_without_recursion_limits():
    net = nn.Identity()
    for _ in range(3000):
        outer = nn.Module()
        outer.sub = net
        net = outer
    assert len(list(net.modules())) == 3001


# -- modes and gradients ---------------------------------------------------------------------
def test_train_eval_recurse():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("yes")


def test_requires_grad_and_zero_grad():
    net = Net()
    x = ember.ones(3)
    net(x).sum().backward()
    assert net.a.w.grad is not None
    np.testing.assert_allclose(net.a.w.grad.numpy(), np.ones(3))
    net.zero_grad(set_to_none=False)
    assert net.a.w.grad is not None and not net.a.w.grad.numpy().any()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())


def test_gradient_reaches_every_parameter_and_matches_torch():
    em = Scale(3)
    em.load_state_dict({"w": np.array([1.0, 2.0, 3.0])}, strict=False)
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    (em(ember.tensor(x)) ** 2).sum().backward()
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = torch.zeros(3, requires_grad=True)
    ((torch.tensor(x) * w + b) ** 2).sum().backward()
    np.testing.assert_allclose(em.w.grad.numpy(), w.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(em.b.grad.numpy(), b.grad.numpy(), rtol=1e-6)


def test_apply_visits_children_before_parent():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Scale", "Scale", "Scale", "Sequential", "Net"]


# -- to() ------------------------------------------------------------------------------------
def test_to_dtype_keeps_parameter_identity_and_casts_floats_only():
    net = Net()
    params = list(net.parameters())
    net.a.w.grad = ember.ones(3)
    steps = net.a.steps
    assert net.to(ember.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(isinstance(p, nn.Parameter) and p.dtype == ember.float64 for p in params)
    assert all(p.requires_grad for p in params)
    assert net.a.w.grad.dtype == ember.float64
    assert net.a.steps.dtype == ember.int64  # integer buffers keep their dtype
    assert net.a.cache.dtype == ember.float64
    assert steps.dtype == ember.int64
    out = net(ember.ones(3, dtype=ember.float64))
    assert out.dtype == ember.float64
    net.float()
    assert net.head.dtype == ember.float32
    net.double()
    assert net.head.dtype == ember.float64
    net.to(ember.zeros(1, dtype=ember.float32))
    assert net.head.dtype == ember.float32
    net.to("cpu", dtype=ember.float64)
    assert net.head.dtype == ember.float64 and net.head.device == ember.device("cpu")
    net.half()
    assert net.head.dtype == ember.float16


def test_to_rejects_integer_dtypes():
    with pytest.raises(TypeError, match="floating point dtypes"):
        Net().to(ember.int32)


def test_to_does_not_record_autograd():
    m = Scale()
    m.to(ember.float64)
    assert m.w.is_leaf and m.w.grad_fn is None and m.w.requires_grad


# -- state_dict ------------------------------------------------------------------------------
def test_state_dict_contents():
    m = Scale()
    sd = m.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["w", "b", "steps"]  # the non-persistent buffer is left out
    assert not sd["w"].requires_grad and not isinstance(sd["w"], nn.Parameter)
    assert sd["w"]._data is m.w._data  # shares memory
    kept = m.state_dict(keep_vars=True)
    assert kept["w"] is m.w
    assert list(m.state_dict(prefix="m.")) == ["m.w", "m.b", "m.steps"]


def test_load_state_dict_round_trip_keeps_identity():
    src, dst = Net(), Net()
    for i, p in enumerate(src.parameters()):
        nn.init.constant_(p, float(i))
    nn.init.constant_(src.a.steps, 7)
    before = [id(p) for p in dst.parameters()]
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    assert [id(p) for p in dst.parameters()] == before
    for (n1, p1), (n2, p2) in zip(src.state_dict().items(), dst.state_dict().items()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.numpy(), p2.numpy())
    assert dst.a.steps.tolist() == [7]
    # loading copies: later changes to the source do not leak
    src.head._data[...] = -1
    assert dst.head.tolist() == [0.0, 0.0]


def test_load_state_dict_accepts_arrays_and_casts():
    m = Scale()
    sd = {"w": np.array([1, 2, 3], dtype=np.float64), "b": np.zeros(3), "steps": np.array([2])}
    m.load_state_dict(sd)
    assert m.w.dtype == ember.float32 and m.w.tolist() == [1.0, 2.0, 3.0]


def test_load_state_dict_strict_error_lists_every_problem():
    m = Scale()
    sd = m.state_dict()
    sd = {"w": ember.ones(4), "steps": sd["steps"], "bogus": ember.ones(1), "more": ember.ones(1)}
    with pytest.raises(RuntimeError) as err:
        m.load_state_dict(sd)
    msg = str(err.value)
    assert msg.startswith("Error(s) in loading state_dict for Scale:")
    assert 'Missing key(s) in state_dict: "b".' in msg
    assert 'Unexpected key(s) in state_dict: "bogus", "more".' in msg
    assert (
        "size mismatch for w: copying a param with shape (4,) from checkpoint, the shape in current model is (3,)."
        in msg
    )


def test_load_state_dict_non_strict_reports_keys_but_not_shapes():
    m = Scale()
    result = m.load_state_dict({"w": ember.full((3,), 2.0), "extra": ember.ones(1)}, strict=False)
    assert result.missing_keys == ["b", "steps"]
    assert result.unexpected_keys == ["extra"]
    assert m.w.tolist() == [2.0, 2.0, 2.0]
    with pytest.raises(RuntimeError, match="size mismatch for w"):
        m.load_state_dict({"w": ember.ones(2)}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([1, 2])


def test_load_state_dict_messages_match_torch():
    em, th = nn.Linear(2, 3), tnn.Linear(2, 3)
    bad = {"weight": np.zeros((3, 2), np.float32), "junk": np.zeros(1, np.float32)}
    with pytest.raises(RuntimeError) as e1:
        em.load_state_dict(bad)
    with pytest.raises(RuntimeError) as e2:
        th.load_state_dict({k: torch.tensor(v) for k, v in bad.items()})
    assert str(e1.value) == str(e2.value)


def test_load_state_dict_assign_takes_the_tensors():
    m = Scale()
    new_w = ember.tensor([5.0, 6.0, 7.0])
    m.load_state_dict({"w": new_w, "b": ember.zeros(3), "steps": ember.zeros(1)}, assign=True)
    assert isinstance(m.w, nn.Parameter) and m.w._data is new_w._data and m.w.requires_grad


def test_state_dict_from_torch_loads_into_matching_model():
    th = tnn.Sequential(tnn.Linear(3, 4), tnn.BatchNorm1d(4), tnn.Linear(4, 2))
    em = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    sd = {k: v.detach().numpy() for k, v in th.state_dict().items()}
    assert em.load_state_dict(sd).missing_keys == []
    for k, v in em.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k])


# -- copies ----------------------------------------------------------------------------------
def test_deepcopy_copies_parameters_and_buffers():
    net = Net()
    net.inner[1] = net.a  # a shared submodule stays shared in the copy
    twin = copy.deepcopy(net)
    assert twin.inner[1] is twin.a and twin.a is not net.a
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), twin.named_parameters()):
        assert n1 == n2 and p1 is not p2 and isinstance(p2, nn.Parameter)
        np.testing.assert_array_equal(p1.numpy(force=True), p2.numpy(force=True))
    twin.a.steps._data[...] = 5
    assert net.a.steps.tolist() == [0]


# -- hooks -----------------------------------------------------------------------------------
def test_forward_hooks_see_and_replace_values():
    m = Scale()
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.tolist()))
    h3 = m.register_forward_hook(lambda mod, args, out: out + 1)
    assert m(ember.ones(3)).tolist() == [3.0, 3.0, 3.0]
    assert calls == [[2.0, 2.0, 2.0]]
    for h in (h1, h2, h3):
        h.remove()
    assert m(ember.ones(3)).tolist() == [1.0, 1.0, 1.0]
    assert len(calls) == 1


def test_forward_hooks_prepend_and_kwargs():
    m = nn.Identity()
    order = []
    m.register_forward_hook(lambda mod, a, o: order.append("first"))
    m.register_forward_hook(lambda mod, a, o: order.append("pre"), prepend=True)
    m(ember.ones(1))
    assert order == ["pre", "first"]

    class KW(nn.Module):
        def forward(self, x, scale=1.0):
            return x * scale

    k = KW()
    k.register_forward_pre_hook(lambda mod, a, kw: (a, {"scale": 3.0}), with_kwargs=True)
    got = []
    k.register_forward_hook(lambda mod, a, kw, out: got.append(kw), with_kwargs=True)
    assert k(ember.ones(1)).tolist() == [3.0]
    assert got == [{"scale": 3.0}]


def test_handle_as_context_manager():
    m = nn.Identity()
    with m.register_forward_hook(lambda mod, a, o: o * 0):
        assert m(ember.ones(1)).tolist() == [0.0]
    assert m(ember.ones(1)).tolist() == [1.0]


# -- repr ------------------------------------------------------------------------------------
def _strip_count(text):
    lines = text.split("\n")
    assert lines[-1].startswith("Total parameters: ")
    return "\n".join(lines[:-1])


def test_nested_repr_matches_torch_plus_a_count_line():
    em = nn.Sequential(
        nn.Linear(2, 3),
        nn.ReLU(),
        nn.Sequential(OrderedDict([("drop", nn.Dropout(0.1)), ("fc", nn.Linear(3, 1))])),
    )
    th = tnn.Sequential(
        tnn.Linear(2, 3),
        tnn.ReLU(),
        tnn.Sequential(OrderedDict([("drop", tnn.Dropout(0.1)), ("fc", tnn.Linear(3, 1))])),
    )
    text = repr(em)
    assert _strip_count(text) == repr(th)
    assert text.endswith("Total parameters: 13 (trainable 13)")
    assert text.count("Total parameters") == 1  # only at the root


def test_count_line_counts_trainable_and_shared_once():
    lin = nn.Linear(10, 100)
    net = nn.Sequential(lin, nn.Linear(100, 10), lin)
    net[1].requires_grad_(False)
    assert repr(net).endswith("Total parameters: 2,110 (trainable 1,100)")


def test_leaf_repr_and_summary():
    lin = nn.Linear(2, 3)
    assert repr(lin) == "Linear(in_features=2, out_features=3, bias=True)"
    assert lin.summary() == (
        "Linear(in_features=2, out_features=3, bias=True)\nTotal parameters: 9 (trainable 9)"
    )
    assert repr(nn.Module()) == "Module()"


def test_custom_module_repr_with_extra_repr():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def extra_repr(self):
            return "width=2"

    assert _strip_count(repr(Block())) == (
        "Block(\n  width=2\n  (fc): Linear(in_features=2, out_features=2, bias=True)\n)"
    )


def test_module_list_repr_compresses_repeats_like_torch():
    em = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)] + [nn.ReLU(), nn.ReLU()])
    th = tnn.ModuleList([tnn.Linear(2, 2) for _ in range(3)] + [tnn.ReLU(), tnn.ReLU()])
    assert _strip_count(repr(em)) == repr(th)
    assert repr(nn.ModuleList()) == "ModuleList()"


# -- nn.utils --------------------------------------------------------------------------------
def test_parameters_to_vector_round_trip_matches_torch():
    em = Net()
    vec = nn.utils.parameters_to_vector(em.parameters())
    assert vec.shape == (sum(p.numel() for p in em.parameters()),)
    new = ember.arange(float(vec.shape[0]))
    nn.utils.vector_to_parameters(new, em.parameters())
    assert em.head.tolist() == [0.0, 1.0] and em.a.w.tolist() == [2.0, 3.0, 4.0]
    np.testing.assert_array_equal(
        nn.utils.parameters_to_vector(em.parameters()).numpy(force=True), new.numpy()
    )
    tv = torch.nn.utils.parameters_to_vector([torch.ones(2, 2), torch.zeros(3)])
    ev = nn.utils.parameters_to_vector([ember.ones(2, 2), ember.zeros(3)])
    np.testing.assert_array_equal(ev.numpy(), tv.numpy())
    with pytest.raises(ValueError, match="elements"):
        nn.utils.vector_to_parameters(ember.zeros(3), em.parameters())


def test_utils_loads_clipping_lazily():
    assert callable(nn.utils.clip_grad_norm_) and callable(nn.utils.clip_grad_value_)
    with pytest.raises(AttributeError, match="no attribute"):
        nn.utils.not_a_helper  # noqa: B018
