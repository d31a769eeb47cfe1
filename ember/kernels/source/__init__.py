"""C sources of the kernel units, and the two functions that turn a unit into the C file
the compiler sees (:func:`render`) and the declarations cffi reads (:func:`cdef`).

A :class:`Unit` is one shared library: a family of kernels (``softmax``, ``norm``, ...)
compiled together, once, the first time one of them is called. Its body is written once
against the macros of :mod:`.common` and instantiated for float32 (``_f32``) and float64
(``_f64``); its ``functions`` are the exported signatures, written with ``scalar`` for the
element type and ``i64`` for 64-bit integers. In the cffi declarations every pointer
parameter becomes ``void *`` (the caller passes ``ffi.from_buffer(array)``; the layout in
C is the same), so one declaration serves any buffer.

A unit may also be built one function at a time (:func:`part`): the same C file with the
other exported functions made ``static`` and unused, which the compiler drops before
optimizing them, so a program that calls only ``adam_multi`` never waits for the SGD and
RMSprop kernels to compile. The machine code of a function must not depend on how it was
built: functions whose code would change (a shared helper inlined, or specialized, once it
has a single caller) are kept together by the unit's ``groups`` or the helper is marked
``noinline`` (``tests/kernels/test_build_parts.py`` compares the code). :func:`companions`
names the functions worth building beside a requested one (``x_backward`` beside
``x_forward``).

Example:
    >>> from ember.kernels.source import UNITS, cdef
    >>> "void ember_softmax_forward_f32(" in cdef(UNITS["softmax"])
    True
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field

from .common import HEADER, POSTLUDE, PRELUDES

__all__ = [
    "Unit",
    "UNITS",
    "ABI_VERSION",
    "DTYPES",
    "render",
    "cdef",
    "variant",
    "part",
    "companions",
    "function_names",
]

ABI_VERSION = 1  # bump when a signature or a calling convention changes
DTYPES = ("f32", "f64")


@dataclass(frozen=True)
class Unit:
    """One family of kernels compiled into one shared library.

    Example:
        >>> u = Unit("demo", ("void twice(const scalar *x, scalar *y, i64 n)",), "")
        >>> u.name
        'demo'
    """

    name: str
    functions: tuple[str, ...]
    body: str
    shared: str = ""  # C emitted once, before the per-dtype bodies
    flags: tuple[str, ...] = field(default=())  # extra compiler flags of this unit
    dtypes: tuple[str, ...] = ("f32", "f64")  # the element types this library holds
    keep: tuple[str, ...] = ()  # the functions this library exports (empty: all of them)
    groups: tuple[tuple[str, ...], ...] = ()  # functions only ever built together
    follows: tuple[tuple[str, str], ...] = ()  # (a, b): b is called soon after a (companions)


_SIG = re.compile(r"^\s*([\w\s]+?)\s+(\w+)\s*\((.*)\)\s*$", re.S)


def _parse(signature: str) -> tuple[str, str, list[str]]:
    m = _SIG.match(signature)
    if m is None:
        raise ValueError(f"bad kernel signature: {signature!r}")
    ret, name, params = m.groups()
    return ret.strip(), name, [p.strip() for p in params.split(",") if p.strip()]


def _exported(unit: Unit) -> list[str]:
    """The signatures ``unit``'s library exports (all, or those named in ``keep``)."""
    return [s for s in unit.functions if not unit.keep or _parse(s)[1] in unit.keep]


def function_names(unit: Unit) -> list[str]:
    """The plain names (without prefix or dtype suffix) of a unit's kernels.

    Example:
        >>> function_names(UNITS["softmax"])[:1]
        ['softmax_forward']
    """
    return [_parse(s)[1] for s in unit.functions]


def _c_type(text: str, ctype: str) -> str:
    text = re.sub(r"\bscalar\b", ctype, text)
    return re.sub(r"\bi64\b", "int64_t", text)


def cdef(unit: Unit) -> str:
    """cffi declarations of ``unit``'s exported functions, for both element types.

    Example:
        >>> "int ember_softmax_abi(void);" in cdef(UNITS["softmax"])
        True
    """
    lines = [f"int ember_{unit.name}_abi(void);"]
    for sfx, ctype in (("f32", "float"), ("f64", "double")):
        if sfx not in unit.dtypes:
            continue
        for sig in _exported(unit):
            ret, name, params = _parse(sig)
            out = []
            for p in params:
                pname = re.findall(r"\w+", p)[-1]
                out.append(f"void *{pname}" if "*" in p else _c_type(p, ctype))
            lines.append(f"{_c_type(ret, ctype)} ember_{name}_{sfx}({', '.join(out)});")
    return "\n".join(lines) + "\n"


_EXPORTED = re.compile(r"\bEMBER_API(\s[^;{}()]*?)\bFN\((\w+)\)(\s*\()")  # a definition


@functools.lru_cache(maxsize=64)  # (a unit's key, its build and cffi all need its text)
def render(unit: Unit) -> str:
    """The complete C source of ``unit`` (header, shared part, float and double bodies).

    Example:
        >>> "ember_softmax_abi" in render(UNITS["softmax"])
        True
    """
    body = unit.body
    if unit.keep:  # the others static and never called: the compiler drops them unoptimized
        seen: list[str] = []

        def hide(m: re.Match) -> str:
            seen.append(m.group(2))
            if m.group(2) in unit.keep:
                return m.group(0)
            return f"static __attribute__((unused)){m.group(1)}FN({m.group(2)}){m.group(3)}"

        body = _EXPORTED.sub(hide, body)
        if sorted(seen) != sorted(function_names(unit)):
            raise ValueError(f"{unit.name}: 'EMBER_API ... FN(name)(' does not match its functions")
    parts = [HEADER, unit.shared]
    for sfx in unit.dtypes:
        parts += [PRELUDES[sfx], body, POSTLUDE]
    parts.append(f"EMBER_API int ember_{unit.name}_abi(void) {{ return {ABI_VERSION}; }}\n")
    return "\n".join(parts)


def variant(unit: Unit, sfx: str) -> Unit:
    """``unit`` with only its ``sfx`` (``'f32'`` or ``'f64'``) kernels: the library ember
    builds, so that a float32 program never waits for the float64 code to compile.

    Example:
        >>> "ember_softmax_forward_f64" in cdef(variant(UNITS["softmax"], "f32"))
        False
    """
    return dataclasses.replace(unit, dtypes=(sfx,))


def part(unit: Unit, name: str) -> Unit:
    """The library of ``unit`` that holds its function ``name``: ``unit`` exporting only
    ``name`` and the functions grouped with it (the whole unit when that is all of them).
    It compiles in a fraction of the unit's time, into the same machine code.

    Example:
        >>> cdef(part(UNITS["softmax"], "softmax_backward")).count("softmax_forward")
        0
    """
    known = function_names(unit)
    if name not in known:
        raise ValueError(f"the {unit.name} kernels have no function {name!r}")
    group = next((g for g in unit.groups if name in g), (name,))
    keep = tuple(n for n in known if n in group)
    return unit if len(keep) == len(known) else dataclasses.replace(unit, keep=keep)


def companions(unit: Unit, name: str) -> list[str]:
    """The functions of ``unit`` likely called soon after ``name``, worth compiling at the
    same time (when they are in another :func:`part`): ``x_backward`` after ``x_forward``,
    and those the unit's ``follows`` pairs name.

    Example:
        >>> companions(UNITS["softmax"], "softmax_forward")
        ['softmax_backward']
        >>> companions(UNITS["winograd"], "winograd_forward")
        ['winograd_weight_grad']
    """
    others = [b for a, b in unit.follows if a == name]
    if name.endswith("_forward"):
        others.insert(0, name[: -len("_forward")] + "_backward")
    known = function_names(unit)
    return [o for o in others if o in known and part(unit, o) != part(unit, name)]


def _units() -> dict[str, Unit]:
    from . import (
        activation,
        arith,
        conv_gemm,
        dropout,
        embedding,
        gemm,
        gemv,
        im2col,
        loss,
        norm,
        optim,
        pool,
        softmax,
        steps,
        winograd,
    )
    from .attention import UNIT as ATTENTION

    mods = (softmax, norm, activation, loss, optim, embedding, pool, dropout, gemm, gemv, winograd)
    mods += (steps, arith)
    units = {m.UNIT.name: m.UNIT for m in mods} | {ATTENTION.name: ATTENTION}
    # built whole until their convolutions' shared helpers keep their machine code when built
    # apart (see the module docstring)
    whole = {u.name: dataclasses.replace(u, groups=(tuple(function_names(u)),))
             for u in (im2col.UNIT, conv_gemm.UNIT)}  # fmt: skip
    return units | whole


UNITS: dict[str, Unit] = _units()
