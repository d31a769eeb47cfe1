"""The small types of the IR: symbolic sizes, source locations, dtype and shape spellings."""

from __future__ import annotations

import numpy as np

from ember.graph import ir
from ember.graph.ir_types import SourceLoc, Sym, dtype_name, format_shape


def test_sym_sizes():
    s = Sym("B", 64, 0)
    assert str(s) == "64*B" and s.resolve(2) == 128 and s.code("n") == "64*n"
    assert str(Sym("B", 1, 1)) == "(B+1)" and Sym() == Sym("B", 1, 0)
    assert Sym("B", 2, 1) != Sym("B", 2, 0) and len({Sym(), Sym("B", 1, 0)}) == 1


def test_source_locations():
    loc = SourceLoc("a.py", 2, "  y = f(x)", "main")
    assert str(loc) == "a.py:2" and loc.describe() == "a.py:2 in main: y = f(x)"
    assert SourceLoc("a.py", 3).describe() == "a.py:3"


def test_spellings():
    assert dtype_name(np.float32) == "f32" and dtype_name(None) == "?"
    assert dtype_name(np.dtype("uint16")) == "uint16"  # no short name: NumPy's
    assert format_shape((Sym("B"), 3)) == "[B,3]" and format_shape(None) == "[?]"


def test_the_ir_module_still_exports_them():
    assert ir.Sym is Sym and ir.SourceLoc is SourceLoc and ir.dtype_name is dtype_name


def test_doctests_of_the_module():
    import doctest

    from ember.graph import ir_types

    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in doctest.DocTestFinder().find(ir_types, ir_types.__name__):
        runner.run(t)
    assert runner.failures == 0 and runner.tries >= 11
