"""ONNX's own node conformance tests (``onnx.backend.test.BackendTest``) against ember's
importer (:class:`ember.onnx.backend.EmberBackend`).

Every node test runs except the ones matching the reviewed exclusion list below; each pattern
names why ember cannot run those cases (a dtype ember has no equivalent for, an operator the
importer does not implement, a random draw). The pattern list is kept tight: no excluded name
is a passing test (checked when the list was last reviewed), so a newly passing feature shows
up by deleting its line. The pass count is printed at the end of the pytest run (see
``conftest.py``).
"""

from __future__ import annotations

import pytest

backend_tests = pytest.importorskip("onnx.backend.test")

from ember.onnx.backend import EmberBackend  # noqa: E402

# pattern (re.search on the test name, e.g. "test_add_uint16_cpu") -> why it is excluded
EXCLUDE = {
    # values ember has no dtype for
    r"(?i)bfloat16|_bf16_": "bfloat16 has no ember dtype",
    r"(?i)float8|e4m3|e5m2|float4e2m1|e8m0": "8- and 4-bit floats have no ember dtype",
    r"(?i)_u?int[24](_|$)|_to_u?int[24]_|u?int[24]_to_": "packed 4- and 2-bit integers have no ember dtype",
    r"(?i)_uint(16|32|64)|_ui64_|uint(16|32|64)_to": "unsigned integers wider than 8 bits have no ember dtype",
    r"^test_bitwise_not_3d": "uint16 inputs: unsigned integers wider than 8 bits have no ember dtype",
    r"(?i)string|strnormalizer|regex_full_match": "strings have no ember dtype",
    r"^test_(sequence|split_to_sequence|optional|identity_sequence|identity_opt|if_seq|if_opt|loop13_seq|loop16_seq_none)": "sequence and optional values are not tensors",
    # operators the importer does not implement
    r"^test_ai_onnx_ml_": "the ai.onnx.ml domain (classic ML operators) is not implemented",
    r"^test_(adam|adagrad|momentum|nesterov_momentum)": "ai.onnx.preview.training optimizers are not implemented",
    r"^test_(gridsample|affine_grid|roialign|basic_deform_conv|deform_conv)(?!.*_expanded)": "spatial sampling ops (GridSample, AffineGrid, RoiAlign, DeformConv) are not implemented",
    r"^test_(linear_attention|causal_conv_with_state|flexattention|tensorscatter)(?!.*_expanded)": "preview attention/state ops (LinearAttention, CausalConvWithState, FlexAttention, TensorScatter) are not implemented",
    r"^test_(dft|stft|melweightmatrix)": "signal-processing ops (DFT, STFT, MelWeightMatrix) are not implemented",
    r"^test_(nonmaxsuppression|image_decoder|tfidfvectorizer|bitcast)_": "NonMaxSuppression, ImageDecoder, TfIdfVectorizer and BitCast are not implemented",
    r"^test_(qlinearmatmul|qlinearconv|convinteger)": "quantized linear algebra (QLinear*, ConvInteger) is not implemented",
    r"^test_det_": "Det is not implemented",
    r"^test_scan_sum": "Scan-8 (with a batch axis and sequence_lens) is not implemented; Scan-9+ is",
    r"^test_(averagepool|maxpool|lppool|convtranspose)_3d": "3-D pools and convolutions: ember has 1-D and 2-D ones",
    # random draws and numerics
    r"^test_(bernoulli|training_dropout(?!_zero_ratio))": "random draws cannot reproduce the reference generator's values",
    r"^test_attention_4d_causal_fp16_expanded": "float16 rounding of the expanded graph differs from the reference by 5e-4",
}


backend_test = backend_tests.BackendTest(EmberBackend, __name__)
for _pattern in EXCLUDE:
    backend_test.exclude(_pattern)

# only the node tests: the "real", "simple" and "pytorch" model tests download models
globals().update(
    {k: v for k, v in backend_test.test_cases.items() if k == "OnnxBackendNodeModelTest"}
)
