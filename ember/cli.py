"""The ``ember`` command.

* ``ember demo``: train a small CNN on the bundled 8x8 digits (no download), with a live
  progress bar; report the test accuracy and save the weights.
* ``ember info``: ember's version, the devices found, NumPy and its BLAS, Python, and which
  optional extras are installed (``--json`` for a machine-readable report).
* ``ember export MODULE:FACTORY --input-shape 1,784``: export a model to ONNX;
  ``ember inspect model.onnx``: its inputs, outputs, ops and parameter count;
  ``ember convert model.onnx --to ort [--quantize int8]``: ONNX Runtime Mobile's format
  (see :mod:`ember.onnx.tools`; needs ``pip install 'ember[onnx]'``).

Exit codes: 0 success, 1 failure, 2 bad command line.

Example:
    $ ember demo --epochs 12 --out digits.safetensors
    $ ember info
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "build_parser", "collect_info", "run_demo"]

EXTRAS = ("cupy", "onnx", "onnxruntime", "tqdm", "threadpoolctl", "mpi4py")
_DISTS = {"cupy": ("cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x")}


# -- info -------------------------------------------------------------------------------------
def _dist_version(module: str) -> str | None:
    """The installed version of ``module``'s distribution (without importing it)."""
    if importlib.util.find_spec(module) is None:
        return None
    for dist in _DISTS.get(module, (module,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "installed"


def _blas_info() -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {}
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                info = {
                    "name": pool.get("internal_api"),
                    "version": pool.get("version"),
                    "threads": pool.get("num_threads"),
                    "architecture": pool.get("architecture"),
                    "source": "threadpoolctl",
                }
                break
    except ImportError:
        pass
    if not info:
        try:
            deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            info = {"name": deps.get("name"), "version": deps.get("version"), "source": "numpy"}
            conf = deps.get("openblas configuration")
            if conf:
                info["configuration"] = conf
        except Exception:  # old NumPy without mode="dicts", or an unusual build
            info = {"name": "unknown", "source": "numpy"}
    if "openblas" in str(info.get("name", "")).lower():  # its idle threads' spin (ember.threads)
        from . import threads

        timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT", "default")
        if threads.blas_spin_unfixed():
            timeout += ", not in effect: numpy was imported before ember"
        elif threads._blas_restarted:
            timeout += ", applied by restarting OpenBLAS's threads: numpy came first"
        info["thread_timeout"] = timeout
    return info


def _devices() -> dict[str, Any]:
    import ember

    out: dict[str, Any] = {"cuda_available": ember.cuda_is_available(), "gpus": []}
    if out["cuda_available"]:
        import cupy

        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props.get("name", b"")
            name = name.decode() if isinstance(name, bytes) else str(name)
            out["gpus"].append(
                {"index": i, "name": name, "memory_gib": round(props["totalGlobalMem"] / 2**30, 1)}
            )
        out["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    try:
        out["default_device"] = str(ember.get_default_device())
    except Exception as e:  # e.g. EMBER_DEVICE names a GPU that is absent
        out["default_device"] = f"error: {e}"
    return out


def _kernels() -> str:
    """One line on ember's C kernels (``ember.kernels.describe``); may build a probe unit."""
    try:
        from . import kernels

        return kernels.describe()
    except Exception as e:  # noqa: BLE001 - a report must not fail on the kernels
        return f"error: {type(e).__name__}: {e}"


def collect_info() -> dict[str, Any]:
    """Everything ``ember info`` reports, as a dict.

    Example:
        >>> sorted(collect_info())[:3]
        ['blas', 'devices', 'ember']
    """
    import numpy as np

    import ember

    return {
        "ember": ember.__version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "numpy": np.__version__,
        "blas": _blas_info(),
        "kernels": _kernels(),
        "devices": _devices(),
        "extras": {name: _dist_version(name) for name in EXTRAS},
        "env": {k: v for k, v in os.environ.items() if k.startswith("EMBER_")},
    }


def _print_info(info: dict[str, Any]) -> None:
    blas = info["blas"]
    blas_text = " ".join(str(blas[k]) for k in ("name", "version") if blas.get(k))
    if blas.get("threads"):
        blas_text += f", {blas['threads']} threads"
    if blas.get("thread_timeout"):
        blas_text += f" (OPENBLAS_THREAD_TIMEOUT={blas['thread_timeout']})"
    dev = info["devices"]
    if dev["cuda_available"]:
        gpus = "; ".join(
            f"cuda:{g['index']} {g['name']} ({g['memory_gib']} GiB)" for g in dev["gpus"]
        )
        cuda = f"available: {gpus}"
    else:
        cuda = "not available" + (
            " (CuPy not installed)" if info["extras"]["cupy"] is None else " (no GPU seen)"
        )
    lines = [
        f"ember {info['ember']}",
        f"Python   {info['python']} on {info['platform']}",
        f"NumPy    {info['numpy']}",
        f"BLAS     {blas_text or 'unknown'}",
        f"Kernels  {info.get('kernels') or 'unknown'}",
        f"CUDA     {cuda}",
        f"Default device: {dev['default_device']}",
        "Optional extras:",
    ]
    width = max(len(n) for n in info["extras"])
    for name, version in info["extras"].items():
        lines.append(f"  {name:<{width}}  {version or 'not installed'}")
    for k, v in info["env"].items():
        lines.append(f"{k}={v}")
    print("\n".join(lines))


# -- demo -------------------------------------------------------------------------------------
def digits_cnn() -> Any:
    """The demo's small CNN for 1x8x8 images, 10 classes.

    Example:
        >>> digits_cnn()(ember.zeros(2, 1, 8, 8)).shape
        (2, 10)
    """
    from ember import nn

    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),  # 32 x 8 x 8
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32 x 4 x 4
        nn.Conv2d(32, 64, 3, padding=1),  # 64 x 4 x 4
        nn.ReLU(),
        nn.MaxPool2d(2),  # 64 x 2 x 2
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def run_demo(
    epochs: int = 12,
    quick: bool = False,
    out: str = "ember-digits-cnn.safetensors",
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    device: str | None = None,
    verbose: int = 1,
) -> dict[str, Any]:
    """Train :func:`digits_cnn` on the bundled digits and save its weights; returns
    ``{"accuracy", "correct", "total", "path", "seconds"}``.

    ``quick`` trains two epochs on 384 images (a smoke test, not a good model).

    Example:
        >>> run_demo(quick=True, out="/tmp/d.safetensors", verbose=0)["total"]  # doctest: +SKIP
        360
    """
    import ember
    from ember import nn
    from ember.data import DataLoader, Digits, Subset
    from ember.optim.lr_scheduler import CosineAnnealingLR
    from ember.train import LRSchedulerCallback, Trainer

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)  # fail before training
    ember.manual_seed(seed)
    train, test = Digits(train=True), Digits(train=False)
    if quick:
        train = Subset(train, range(384))
        epochs = 2
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True)
    test_loader = DataLoader(test, batch_size=256)
    model = digits_cnn()
    optimizer = ember.optim.Adam(model.parameters(), lr=lr)
    schedule = CosineAnnealingLR(optimizer, T_max=max(1, epochs * len(train_loader)))
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        metrics=["accuracy"],
        callbacks=[LRSchedulerCallback(schedule, interval="step")],
        device=device,
        verbose=verbose,
    )
    start = time.perf_counter()
    trainer.fit(train_loader, test_loader, epochs=epochs)
    seconds = time.perf_counter() - start
    result = trainer.evaluate(test_loader)
    ember.save(model.state_dict(), out)
    total = len(test)
    return {
        "accuracy": result["accuracy"],
        "correct": round(result["accuracy"] * total),
        "total": total,
        "path": os.path.abspath(out),
        "seconds": seconds,
    }


# -- command line -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``ember`` argument parser.

    Example:
        >>> build_parser().parse_args(["demo", "--quick"]).quick
        True
    """
    from ember import __version__

    parser = argparse.ArgumentParser(
        prog="ember",
        description="ember: a deep learning framework on NumPy (CuPy on GPUs).",
    )
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a small CNN on the bundled 8x8 digits",
        description="Train a small CNN on the bundled 8x8 handwritten digits (1,437 training "
        "and 360 test images, no download), report the test accuracy and save the weights.",
    )
    demo.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    demo.add_argument("--quick", action="store_true", help="2 epochs on 384 images (a smoke test)")
    demo.add_argument(
        "--out",
        default="ember-digits-cnn.safetensors",
        metavar="PATH",
        help="where to save the weights (default ./ember-digits-cnn.safetensors)",
    )
    demo.add_argument("--batch-size", type=int, default=32, help="default 32")
    demo.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: ember's)")
    demo.add_argument("--quiet", action="store_true", help="no progress output")

    info = sub.add_parser(
        "info",
        help="show version, devices, NumPy/BLAS and optional extras",
        description="Show ember's version, the devices found, NumPy and the BLAS it uses, "
        "Python, and which optional extras are installed.",
    )
    info.add_argument("--json", action="store_true", help="print the report as JSON")

    from ember.onnx.tools import add_commands as add_onnx_commands

    add_onnx_commands(sub)
    return parser


def _positive(parser: argparse.ArgumentParser, name: str, value: float) -> None:
    if value <= 0:
        parser.error(f"{name} must be positive, got {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ember`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit
    code.

    Example:
        >>> main(["info", "--json"])  # doctest: +SKIP
        0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command in ("export", "inspect", "convert"):
            from ember.onnx.tools import run_command

            return run_command(args)
        if args.command == "info":
            info = collect_info()
            if args.json:
                print(json.dumps(info, indent=2))
            else:
                _print_info(info)
            return 0
        if args.command == "demo":
            _positive(parser, "--epochs", args.epochs)
            _positive(parser, "--batch-size", args.batch_size)
            _positive(parser, "--lr", args.lr)
            result = run_demo(
                epochs=args.epochs,
                quick=args.quick,
                out=args.out,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                device=args.device,
                verbose=0 if args.quiet else 1,
            )
            print(
                f"test accuracy: {result['accuracy']:.2%} ({result['correct']}/{result['total']}) "
                f"after {result['seconds']:.1f}s of training"
            )
            print(f"saved weights to {result['path']}")
            print(
                "reload it with: from ember.cli import digits_cnn; model = digits_cnn(); "
                f"model.load_state_dict(ember.load({result['path']!r}))"
            )
            return 0
    except KeyboardInterrupt:
        print("ember: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (| head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as e:  # a clean one-line error instead of a traceback
        if os.environ.get("EMBER_DEBUG"):
            raise
        print(f"ember {args.command}: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
