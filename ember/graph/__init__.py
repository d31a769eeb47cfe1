"""Graph mode: ``compile`` traces a function (a whole training step if you like) into a small
IR (:mod:`ember.graph.ir`), optimizes it (:mod:`ember.graph.passes`) and runs it as generated
NumPy code (:mod:`ember.graph.executor`).

Example:
    >>> import ember
    >>> from ember.graph import compile
    >>> double = compile(lambda x: x * 2)
    >>> double(ember.ones(2)).tolist()
    [2.0, 2.0]
"""

from .compile import CacheInfo, CompiledFunction, GraphBreakWarning, RetraceWarning, compile
from .executor import GraphRuntimeError, Program
from .ir import Graph, IRError, Node, SourceLoc, Sym, Update, Value
from .profile import GraphProfile
from .trace import GraphBreak, Tracer, trace

__all__ = [
    "compile",
    "CompiledFunction",
    "CacheInfo",
    "GraphBreak",
    "GraphBreakWarning",
    "RetraceWarning",
    "GraphRuntimeError",
    "Program",
    "GraphProfile",
    "Tracer",
    "trace",
    "Graph",
    "Node",
    "Value",
    "Update",
    "SourceLoc",
    "Sym",
    "IRError",
]
