"""Smoke tests of the runnable examples in ``examples/``: each script's ``main([...])`` runs
in-process with its quick arguments, and its metrics are checked (finite losses, the
expected keys, the loss going down where a few steps are enough for that).

Example:
    $ python -m pytest tests/test_examples.py -q
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
import struct
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (the folder is not a package)."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"ember_example_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def finite(*values: float) -> bool:
    return all(math.isfinite(float(v)) for v in values)


def test_every_example_is_a_documented_script() -> None:
    assert {"digits_cnn", "mnist_mlp", "char_gpt", "lstm_classifier"} <= set(SCRIPTS)
    for name in SCRIPTS:
        module = load_example(name)
        doc = module.__doc__ or ""
        assert "Run it" in doc and f"examples/{name}.py" in doc, name
        assert callable(module.main) and callable(module.build_parser), name
        source = (EXAMPLES / f"{name}.py").read_text()
        assert 'if __name__ == "__main__":' in source, name
        assert not re.search(r"^\s*(import|from)\s+torch\b", source, re.M), f"{name} uses torch"


def test_digits_cnn() -> None:
    out = load_example("digits_cnn").main(["--quick", "--quiet"])
    assert set(out) >= {"test_accuracy", "test_loss", "train_losses", "first_loss", "steps"}
    assert out["steps"] == 10  # 320 images / 32
    assert finite(out["test_loss"], out["first_loss"], *out["train_losses"])
    assert out["train_losses"][-1] < out["first_loss"]
    assert out["test_accuracy"] > 0.3  # ten classes: chance is 0.1


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fake_mnist(folder: Path, n_train: int = 256, n_test: int = 64) -> None:
    """Tiny MNIST-format files: the label ``c`` draws a bright band at rows ``2c..2c+3``."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 * c : 2 * c + 4] = 255
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def test_mnist_mlp(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fake_mnist(tmp_path)
    ckpt = tmp_path / "ckpt"
    argv = ["--data-dir", str(tmp_path), "--epochs", "1", "--batch-size", "32"]
    out = load_example("mnist_mlp").main([*argv, "--checkpoint-dir", str(ckpt), "--verbose", "2"])
    printed = capsys.readouterr().out
    assert "Epoch 1/1" in printed and "val_accuracy" in printed  # the progress lines
    assert set(out) >= {"history", "epochs_run", "test_loss", "test_accuracy", "checkpoint"}
    assert out["epochs_run"] == 1
    history = out["history"]
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert finite(out["test_loss"], *history["loss"], *history["val_loss"])
    assert out["test_loss"] < math.log(10)  # below chance after one epoch on this easy data
    assert Path(out["checkpoint"]).is_file()


def test_mnist_mlp_missing_files_say_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_example("mnist_mlp").main(["--data-dir", str(tmp_path), "--verbose", "0"])


def test_char_gpt(tmp_path: Path) -> None:
    example = load_example("char_gpt")
    ckpt = str(tmp_path / "gpt.safetensors")
    quick = ["--quick", "--quiet", "--threads", "0", "--checkpoint", ckpt]  # 0: leave BLAS be
    out = example.main(quick)
    keys = {"train_loss", "val_loss", "best_val_loss", "first_loss", "steps", "history", "sample"}
    assert set(out) >= keys
    assert out["steps"] == 30
    assert [h[0] for h in out["history"]] == [15, 30]
    assert finite(out["train_loss"], out["val_loss"], out["first_loss"])
    assert out["val_loss"] < out["first_loss"] - 0.5  # from ~ln(vocab) = 4.1
    assert out["sample"].startswith("ROMEO:\n") and len(out["sample"]) == len("ROMEO:\n") + 40
    # the checkpoint holds the trained model: reloaded, it scores the same validation loss
    again = example.main([*quick, "--sample-only"])
    assert again["val_loss"] == pytest.approx(out["val_loss"], rel=1e-5)
    assert again["sample"] == out["sample"]  # same weights, same seed: same text


def test_char_gpt_schedule() -> None:
    warmup_cosine = load_example("char_gpt").warmup_cosine
    assert warmup_cosine(0.0, 0, 10, 0.1) == pytest.approx(0.1)  # first warmup step
    assert warmup_cosine(0.0, 10, 10, 0.1) == pytest.approx(1.0)  # peak after warmup
    assert warmup_cosine(0.5, 100, 10, 0.1) == pytest.approx(0.55)  # half way down
    assert warmup_cosine(2.0, 100, 10, 0.1) == pytest.approx(0.1)  # clamped at the floor


def test_lstm_classifier() -> None:
    out = load_example("lstm_classifier").main(["--quick", "--quiet"])
    assert set(out) >= {"test_accuracy", "test_loss", "first_loss", "train_losses", "steps"}
    assert finite(out["test_loss"], out["first_loss"], *out["train_losses"])
    assert out["train_losses"][-1] < out["first_loss"]
    assert out["test_accuracy"] > 0.75  # two balanced classes: chance is 0.5


def test_autograd_basics() -> None:
    out = load_example("autograd_basics").main(["--quiet"])
    assert out["checks"] == 8
    np.testing.assert_allclose(out["d2y_dx2"], [6.0, 12.0, 18.0], rtol=1e-6)
    first, last = out["line_fit_loss"]
    assert last < 1e-3 < first
