"""The examples in the docstrings of ember.kernels and ember.threads run and hold."""

from __future__ import annotations

import doctest
import importlib

import numpy as np

import ember

MODULES = [
    "ember.kernels",
    "ember.kernels._seam",
    "ember.kernels.build",
    "ember.kernels.runtime",
    "ember.kernels.nn",
    "ember.kernels.norm",
    "ember.kernels.conv",
    "ember.kernels.pool",
    "ember.kernels.optim",
    "ember.kernels.attention",
    "ember.kernels.gemv",
    "ember.kernels.source",
    "ember.kernels.source.common",
    "ember.kernels.source.softmax",
    "ember.kernels.source.norm",
    "ember.kernels.source.dropout",
    "ember.kernels.source.activation",
    "ember.kernels.source.loss",
    "ember.kernels.source.optim",
    "ember.kernels.source.embedding",
    "ember.kernels.source.pool",
    "ember.kernels.source.im2col",
    "ember.kernels.source.attention",
    "ember.kernels.source.gemv",
    "ember.kernels.source.steps",
    "ember.threads",
]


def test_doctests_of_the_kernel_modules():
    saved, kernel_threads = ember.get_num_threads(), ember.threads._kernel_threads
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    try:
        for name in MODULES:
            mod = importlib.import_module(name)
            for t in doctest.DocTestFinder().find(mod, name, globs={"np": np, "ember": ember}):
                t.globs.update(vars(mod), np=np, ember=ember)
                runner.run(t)
    finally:
        ember.set_num_threads(max(saved, 1))
        ember.threads._kernel_threads = kernel_threads
        ember.threads.limit_this_thread(None)
    assert runner.failures == 0 and runner.tries > 60
