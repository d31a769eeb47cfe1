"""The benchmark workloads start where WORKLOADS.md says (first losses), in ember and in the
NumPy floor, so the timed figures compare like with like."""

import pytest

import ember
from benchmarks.workloads import w1_mlp, w2_cnn, w3_gpt

FIRST_LOSS = {w1_mlp: 2.302809, w2_cnn: 2.3171, w3_gpt: 4.595155}


@pytest.mark.parametrize("workload", [w1_mlp, w2_cnn, w3_gpt], ids=lambda m: m.__name__[-6:])
def test_first_loss_matches_workloads_md(workload):
    want = FIRST_LOSS[workload]
    tol = 5e-6 if workload is not w2_cnn else 5e-5
    ember_step = workload.framework_step(ember)
    assert ember_step() == pytest.approx(want, abs=tol)
    second = ember_step()
    assert second < want  # one Adam step on a fixed batch lowers the loss
    assert workload.numpy_step()() == pytest.approx(want, abs=tol)
