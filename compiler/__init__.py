"""spikeforge.compiler: the network model and its compilation to a neuron core.

``compile(network, config=None)`` -> CompiledNetwork (image, config, mapping, scaling, report).
Note: ``spikeforge.compiler.compile`` is the *function*; the module is compiler/compile.py
(``from spikeforge.compiler.compile import CompiledNetwork``).
"""

from spikeforge.compiler.compile import CompiledNetwork, compile
from spikeforge.compiler.errors import CompileError, FitError, QuantisationWarning

__all__ = ["CompiledNetwork", "CompileError", "FitError", "QuantisationWarning", "compile"]
