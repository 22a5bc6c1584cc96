"""Errors of the compiler (Network -> CoreImage).

Every message names the object (population, projection, parameter), the limit it hit and the fix, so
that a user who reads only the message knows what to change.
"""

from __future__ import annotations


class CompileError(ValueError):
    """The network cannot be compiled to a CoreImage."""


class FitError(CompileError):
    """The network does not fit the CoreConfig: a size, a feature or a width is too small."""


class QuantisationWarning(UserWarning):
    """Quantisation changed the network noticeably (e.g. synapses rounded to zero); see the report."""
