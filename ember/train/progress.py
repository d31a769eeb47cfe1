"""The training progress bar: a live bar per epoch (tqdm when installed, else a built-in
one) with the running loss and metrics, samples/s and the ETA.

When the output is not a terminal (a log file, CI) the live bar is off and one summary line
is printed per epoch instead; ``verbose=0`` prints nothing, ``verbose=2`` always prints
lines.

Example:
    >>> from ember.train import ProgressBar
    >>> bar = ProgressBar(verbose=2)   # one line per epoch, even in a terminal
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from .callbacks import Callback

__all__ = ["ProgressBar"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _interactive(stream: TextIO) -> bool:
    if os.environ.get("EMBER_PROGRESS", "").lower() in ("0", "off", "false"):
        return False
    if "ipykernel" in sys.modules:  # Jupyter: tqdm.auto draws a widget
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _SimpleBar:
    """A minimal single-line bar (used when tqdm is not installed)."""

    def __init__(self, total: int | None, desc: str, file: TextIO, mininterval: float = 0.1):
        self.total, self.desc, self.file = total, desc, file
        self.n = 0
        self.postfix = ""
        self.start = time.perf_counter()
        self.mininterval = mininterval
        self._last = 0.0

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self._last >= self.mininterval:
            self._last = now
            self._draw(now)

    def set_postfix_str(self, s: str, refresh: bool = False) -> None:
        self.postfix = s
        if refresh:
            self._draw(time.perf_counter())

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-9)
        rate = self.n / elapsed
        if self.total:
            frac = min(self.n / self.total, 1.0)
            filled = int(frac * 20)
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            head = (
                f"{self.desc} {frac:4.0%}|{'#' * filled}{'.' * (20 - filled)}| "
                f"{self.n}/{self.total} [{_duration(elapsed)}<{_duration(eta)}, "
                f"{rate:.0f} samples/s]"
            )
        else:
            head = f"{self.desc} {self.n} [{_duration(elapsed)}, {rate:.0f} samples/s]"
        line = head + (" " + self.postfix if self.postfix else "")
        self.file.write("\r" + line + "\033[K")
        self.file.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        self.file.write("\n")
        self.file.flush()


def _make_bar(total: int | None, desc: str, file: TextIO) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _SimpleBar(total, desc, file)
    return tqdm(
        total=total,
        desc=desc,
        file=file,
        unit=" samples",
        unit_scale=False,
        dynamic_ncols=True,
        leave=True,
        mininterval=0.1,
    )


class ProgressBar(Callback):
    """Show training progress: the epoch, a live bar over the epoch's samples, the running
    loss and metrics, throughput (samples/s) and the time left.

    Args:
        verbose: 0 silent; 1 a live bar in a terminal (one line per epoch otherwise);
            2 one line per epoch.
        file: where to write (default: the bar on stderr, summary lines on stdout).

    The environment variable ``EMBER_PROGRESS=0`` turns the live bar off.

    Example:
        >>> trainer = Trainer(model, loss_fn, opt, callbacks=[ProgressBar()])  # doctest: +SKIP
    """

    def __init__(self, verbose: int = 1, file: TextIO | None = None) -> None:
        self.verbose = verbose
        self.file = file
        self._bar: Any = None
        self._live = False

    def _bar_stream(self) -> TextIO:
        return self.file or sys.stderr

    def _line_stream(self) -> TextIO:
        return self.file or sys.stdout

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._live = self.verbose == 1 and _interactive(self._bar_stream())

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._seen = 0
        self._desc = f"Epoch {epoch + 1}/{getattr(self.trainer, 'epochs', '?')}"
        if self._live:
            total = getattr(self.trainer, "samples_per_epoch", None)
            self._bar = _make_bar(total, self._desc, self._bar_stream())

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        n = int(logs.get("batch_size", 0))
        self._seen += n
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(logs, skip_val=True), refresh=False)
            self._bar.update(n)

    def _postfix(self, logs: dict, skip_val: bool = False) -> str:
        skip = {"batch_loss", "batch_size", "step", "lr"}
        parts = [
            f"{k}={_fmt(v)}"
            for k, v in logs.items()
            if k not in skip and not (skip_val and k.startswith("val_"))
        ]
        return " ".join(parts)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(logs), refresh=True)
            self._bar.close()
            self._bar = None
            return
        if self.verbose == 0:
            return
        elapsed = time.perf_counter() - self._start
        rate = self._seen / elapsed if elapsed > 0 else 0.0
        parts = [
            self._desc,
            f"{self._seen} samples",
            f"{elapsed:.1f}s ({rate:.0f} samples/s)",
        ]
        parts += [f"{k} {_fmt(v)}" for k, v in logs.items() if k != "lr"]
        print(" - ".join(parts), file=self._line_stream(), flush=True)

    def on_exception(self, exception: BaseException) -> None:
        if self._bar is not None:  # training stopped mid-epoch
            self._bar.close()
            self._bar = None
