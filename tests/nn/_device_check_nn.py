"""GPU check for ember.nn (run by hand on a CUDA machine: ``python tests/nn/_device_check_nn.py``).

Moves modules to the GPU and back, runs layers there, initialises GPU tensors and compares
with the CPU. Prints one line per check and a summary; exits 1 when a check fails.
"""

import copy
import os
import sys
import traceback

import numpy as np

import ember
from ember import nn

DEV = os.environ.get("EMBER_CHECK_DEVICE", "cuda")  # "cpu" dry-runs the script itself
CHECKS = []


def check(name):
    def wrap(fn):
        CHECKS.append((name, fn))
        return fn

    return wrap


def host(t):
    return t.detach().cpu().numpy()


def cnn():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
        nn.GroupNorm(2, 8),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.0),
        nn.Linear(8, 5),
    )


@check("to(cuda) keeps parameter identity and moves buffers")
def _():
    m = cnn()
    params = list(m.parameters())
    m.to(DEV)
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(p.device.type == DEV.split(":")[0] for p in m.parameters())
    assert all(b.device.type == DEV.split(":")[0] for b in m.buffers())
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)
    m.cpu()
    assert all(p.device.type == "cpu" for p in m.parameters())


@check("forward/backward on cuda match cpu")
def _():
    ember.manual_seed(0)
    cpu = cnn()
    gpu = copy.deepcopy(cpu).to(DEV)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    y = ember.tensor([0, 1, 2, 3])
    for model, dev in ((cpu, "cpu"), (gpu, DEV)):
        out = model(ember.tensor(x, device=dev))
        nn.CrossEntropyLoss()(out, y.to(dev)).backward()
    np.testing.assert_allclose(
        host(gpu(ember.tensor(x, device=DEV))), host(cpu(ember.tensor(x))), rtol=1e-4, atol=1e-5
    )
    for (n, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        np.testing.assert_allclose(host(q.grad), host(p.grad), rtol=1e-3, atol=1e-5, err_msg=n)
    for (n, b), c in zip(cpu.named_buffers(), gpu.buffers()):
        np.testing.assert_allclose(host(c), host(b), rtol=1e-4, atol=1e-6, err_msg=n)


@check("state_dict crosses devices both ways")
def _():
    cpu, gpu = cnn(), cnn().to(DEV)
    gpu.load_state_dict(cpu.state_dict())
    for (n, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values()):
        assert b.device.type == DEV.split(":")[0], n
        np.testing.assert_array_equal(host(a), host(b))
    cpu2 = cnn()
    cpu2.load_state_dict(gpu.state_dict())
    np.testing.assert_array_equal(host(cpu2[0].weight), host(cpu[0].weight))
    cpu3 = cnn()
    cpu3.load_state_dict({k: host(v) for k, v in gpu.state_dict().items()})


@check("init functions on cuda tensors")
def _():
    for fn, kw in [
        (nn.init.uniform_, {"a": -1.0, "b": 1.0}),
        (nn.init.normal_, {}),
        (nn.init.trunc_normal_, {"std": 1.0, "a": -0.5, "b": 0.5}),
        (nn.init.xavier_uniform_, {}),
        (nn.init.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "relu"}),
        (nn.init.orthogonal_, {}),
        (nn.init.eye_, {}),
        (nn.init.constant_, {"val": 0.5}),
    ]:
        t = ember.empty(64, 32, device=DEV)
        out = fn(t, **kw)
        assert out is t and t.device.type == DEV.split(":")[0], fn.__name__
        assert np.isfinite(host(t)).all(), fn.__name__
    t = nn.init.trunc_normal_(ember.empty(1000, device=DEV), a=-0.5, b=0.5)
    assert np.abs(host(t)).max() <= 0.5
    q = host(nn.init.orthogonal_(ember.empty(8, 8, device=DEV)))
    np.testing.assert_allclose(q @ q.T, np.eye(8), atol=1e-5)
    nn.init.dirac_(ember.empty(4, 4, 3, 3, device=DEV))


@check("layers built on cuda, to(dtype) on cuda, deepcopy and zero_grad")
def _():
    lin = nn.Linear(4, 3, device=DEV, dtype=ember.float64)
    emb = nn.Embedding(10, 4, padding_idx=0, device=DEV)
    assert lin.weight.device.type == DEV.split(":")[0] and lin.weight.dtype == ember.float64
    assert not host(emb.weight)[0].any()
    out = lin(ember.randn(2, 4, device=DEV, dtype=ember.float64))
    out.sum().backward()
    lin.to(ember.float32)
    assert (
        lin.weight.grad.dtype == ember.float32 and lin.weight.grad.device.type == DEV.split(":")[0]
    )
    lin.zero_grad(set_to_none=False)
    assert not host(lin.weight.grad).any()
    twin = copy.deepcopy(lin)
    assert twin.weight.device.type == DEV.split(":")[0] and twin.weight is not lin.weight
    v = nn.utils.parameters_to_vector(lin.parameters())
    nn.utils.vector_to_parameters(v * 0, lin.parameters())
    assert not host(lin.weight).any()


if __name__ == "__main__":
    if DEV.startswith("cuda") and not ember.cuda_is_available():
        print("SKIP: no usable CUDA device (is cupy installed?)")
        sys.exit(0)
    ember.set_default_device("cpu")  # models start on the host; checks move them
    RESULTS = []
    for name, fn in CHECKS:
        try:
            fn()
            RESULTS.append((name, "ok", ""))
        except Exception as e:  # report every check, keep going
            RESULTS.append((name, "FAIL", f"{type(e).__name__}: {e}"))
            traceback.print_exc()
    for name, status, detail in RESULTS:
        print(f"{status:4} {name} {detail}")
    failed = [r for r in RESULTS if r[1] != "ok"]
    print(f"{len(RESULTS) - len(failed)} ok, {len(failed)} failed")
    sys.exit(1 if failed else 0)
