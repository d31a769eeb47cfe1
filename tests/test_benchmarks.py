"""The benchmark workloads start where WORKLOADS.md says (first losses), in ember (eager and
compiled) and in the NumPy floor, so the timed figures compare like with like; the benchmark
scripts' other paths (ONNX Runtime, the summary, the start-up figures) run on tiny inputs.
No test here asserts a time."""

import numpy as np
import pytest

import ember
from benchmarks import compiled, run, startup
from benchmarks.workloads import w1_mlp, w2_cnn, w3_gpt

FIRST_LOSS = {w1_mlp: 2.302809, w2_cnn: 2.3171, w3_gpt: 4.595155}
WORKLOADS = [w1_mlp, w2_cnn, w3_gpt]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda m: m.__name__[-6:])
def test_first_loss_matches_workloads_md(workload):
    want = FIRST_LOSS[workload]
    tol = 5e-6 if workload is not w2_cnn else 5e-5
    ember_step = workload.framework_step(ember)
    assert ember_step() == pytest.approx(want, abs=tol)
    second = ember_step()
    assert second < want  # one Adam step on a fixed batch lowers the loss
    assert workload.numpy_step()() == pytest.approx(want, abs=tol)


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda m: m.__name__[-6:])
def test_compiled_step_follows_the_eager_one(workload):
    eager, comp = workload.framework_step(ember), workload.framework_step(ember, compiled=True)
    tol = 5e-6 if workload is not w2_cnn else 5e-5
    for _ in range(3):  # trace, first graph run, second graph run
        assert comp() == pytest.approx(eager(), abs=tol)


@pytest.mark.parametrize("workload", [w1_mlp, w3_gpt], ids=["MLP", "GPT"])
def test_compiled_inference_matches_eager(workload):
    eager, comp = workload.framework_infer(ember), workload.framework_infer(ember, compiled=True)
    want = eager()
    for _ in range(2):
        np.testing.assert_allclose(comp(), want, rtol=1e-5, atol=1e-6)


def test_onnxruntime_runs_the_pytorch_export():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    call = run.onnxruntime_infer("W4-MLP")
    assert call.note.startswith("torch.onnx.export(dynamo=False)")
    np.testing.assert_allclose(call(), w1_mlp.numpy_infer()(), rtol=1e-4, atol=1e-5)


def test_onnx_export_falls_back_to_ember(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    def no_torch():
        raise ImportError("no torch here")

    monkeypatch.setattr(run, "_torch", no_torch)
    path = str(tmp_path / "mlp.onnx")
    assert run.export_onnx("W4-MLP", path).startswith("ember.export")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = w1_mlp.make_batch(1)[0]
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, w1_mlp.numpy_infer()(), rtol=1e-4, atol=1e-5)


def test_measure_records_a_compiled_pair():
    rec = run.measure("W4-MLP", "ember-compiled", timed=1)
    assert "error" not in rec and rec["median_us"] > 0
    rec = run.measure("W1", "ember-compiled", timed=1)
    assert rec["loss_decreased"] and rec["loss_first"] == pytest.approx(2.302809, abs=5e-6)


def test_every_pair_is_selectable():
    pairs = run.selected(None, None)
    for impl in ("ember", "ember-compiled", "numpy"):
        assert ("W1", impl) in pairs
    assert ("W4-GPT", "ember-compiled") in pairs
    assert run.selected({"W4"}, {"ember"}) == [("W4-MLP", "ember"), ("W4-GPT", "ember")]
    assert run.selected({"startup"}, None) == []


def test_summary_rates_each_goal(capsys):
    records = [
        {"workload": "W1", "impl": "ember", "median_ms": 5.0},
        {"workload": "W1", "impl": "ember-compiled", "median_ms": 3.0},
        {"workload": "W1", "impl": "torch", "median_ms": 4.0},
        {"workload": "W2", "impl": "ember-compiled", "median_ms": 29.6},
        {"workload": "W2", "impl": run.TF_NAME, "median_ms": run.TF_W2_QUOTED_MS},
        {"workload": "W4-MLP", "impl": "ember-compiled", "error": "boom"},
        {"workload": "W4-MLP", "impl": "onnxruntime", "median_us": 44.0},
    ]
    start = {"import_s": 0.1, "compile_cold_s": 6.0}
    rows = {r["goal"]: r["ratio"] for r in run.summary(records, start)}
    assert rows["W1 ember <= 1x torch"] == pytest.approx(1.25)
    assert rows["W1 ember-compiled <= 1x torch"] == pytest.approx(0.75)
    assert rows[f"W2 ember-compiled <= 1x {run.TF_NAME}"] == pytest.approx(2.0)
    assert not any(g.startswith("W4") for g in rows)  # an errored figure has no ratio
    assert rows["import ember <= 0.15 s"] == 0.1
    out = capsys.readouterr().out
    assert "W1 ember <= 1x torch" in out and "MISSED" in out and " met" in out
    assert "compiled step, first call cold <= 5 s" in out
    run.table(records)
    assert "ERROR" in capsys.readouterr().out
    assert compiled.speedups(records) == {"W1": pytest.approx(5 / 3)}


def test_rounds_combine_to_medians_and_goals_use_per_round_ratios(capsys):
    def rnd(ember_ms, torch_ms, err=False):
        e = {"workload": "W1", "impl": "ember", "median_ms": ember_ms}
        if err:
            e = {"workload": "W1", "impl": "ember", "error": "boom"}
        return [e, {"workload": "W1", "impl": "torch", "median_ms": torch_ms}]

    # the host slows down in round 2: figures drift, their ratio does not
    rounds = [rnd(4.0, 5.0), rnd(8.0, 10.0), rnd(5.0, 5.0)]
    records = run.combine(rounds)
    assert records[0]["median_ms"] == 5.0 and records[0]["rounds"] == [4.0, 8.0, 5.0]
    assert records[1]["median_ms"] == 5.0
    assert run.round_ratio(rounds, "W1", "ember", "torch") == [0.8, 0.8, 1.0]
    rows = {r["goal"]: r for r in run.summary(records, rounds=rounds)}
    assert rows["W1 ember <= 1x torch"]["ratio"] == pytest.approx(0.8)
    assert "0.80-1.00 over 3 rounds" in capsys.readouterr().out
    # a pair that failed in one round keeps its error
    assert "error" in run.combine([rnd(4.0, 5.0), rnd(1.0, 5.0, err=True)])[0]


def test_phases_count_nested_time_once():
    class Work:
        def outer(self):
            return self.inner() + 1

        def inner(self):
            return 1

    phases = startup.Phases()
    phases.wrap(Work, "outer", "outer")
    phases.wrap(Work, "inner", "inner")
    assert Work().outer() == 2
    assert set(phases.seconds) == {"outer", "inner"}
    assert all(v >= 0 for v in phases.seconds.values())


def test_import_times_cover_each_interpreter():
    r = startup.import_times(1)
    assert set(r) == {"bare_s", "numpy_s", "ember_s", "first_use_s"}
    assert r["bare_s"] > 0


def test_compile_first_call_cold_and_cached(monkeypatch):
    monkeypatch.setenv("EMBER_KERNELS", "numpy")  # no C compiler run in the test suite
    out = startup.compile_times()
    for name in ("cold", "cached"):
        rec = out[name]
        assert "error" not in rec, rec
        assert {"trace", "passes", "codegen"} <= set(rec["phases"])
        assert rec["first_call_s"] == pytest.approx(sum(rec["phases"].values()))
