"""Errors and notes of the spikeforge PyNN backend.

A PyNN script meets spikeforge's limits in one of two ways: it uses a feature the neuron core does not
have (conductance-based cells, other plasticity rules, current sources, ...) -- an
``UnsupportedFeatureError`` that names the feature and what is supported -- or it calls a
sPyNNaker-only function that has no meaning here (cores per population, delay extensions, ...) -- a
``SpiNNakerOnlyCallNote`` warning, after which the script carries on, so a sPyNNaker script runs
unchanged except for its import line.
"""

from __future__ import annotations

import warnings

#: What spikeforge.pynn supports, quoted by every UnsupportedFeatureError.
SUPPORTED_CELLS = "IF_curr_exp, SpikeSourceArray, SpikeSourcePoisson"
SUPPORTED_SYNAPSES = (
    "StaticSynapse, STDPMechanism(timing_dependence=SpikePairRule(...), "
    "weight_dependence=AdditiveWeightDependence(...))"
)


class UnsupportedFeatureError(NotImplementedError):
    """The script uses a PyNN feature that spikeforge's neuron core cannot run.

    The message names the feature, says what is supported instead and, where there is one, the fix.
    (A NotImplementedError, hence a RuntimeError: the spikeforge CLI prints it as a one-paragraph
    message, not a traceback.)"""

    def __init__(self, feature: str, supported: str, fix: str | None = None):
        self.feature, self.supported, self.fix = feature, supported, fix
        text = f"{feature} is not supported by spikeforge.pynn; supported: {supported}"
        if fix:
            text += f". Fix: {fix}"
        super().__init__(text)


class SegmentChangeError(RuntimeError):
    """A neuron parameter or synapse changed between two run() calls of one segment.

    spikeforge.pynn runs each segment (the time since setup() or the last reset()) from t = 0 on the
    chosen backend -- the same deterministic network and inputs give the same past, so run(a);
    run(b) equals run(a + b) exactly, on every backend including the RTL and a board. A change to the
    network in the middle of a segment cannot be replayed that way."""


class SpiNNakerOnlyCallNote(UserWarning):
    """A sPyNNaker-only call (cores per population, placement, delay extensions, ...) that has no
    meaning on a spikeforge core; it is accepted and ignored so sPyNNaker scripts run unchanged."""


def note_spinnaker_only(call: str, why: str = "spikeforge maps a whole network onto one core") -> None:
    """Warn once per call site that ``call`` is a sPyNNaker-only call and is ignored."""
    warnings.warn(f"{call} is a sPyNNaker-only call; spikeforge.pynn ignores it ({why})",
                  SpiNNakerOnlyCallNote, stacklevel=3)
