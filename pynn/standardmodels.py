"""The PyNN standard models spikeforge runs, and clear refusals for the ones it does not.

Supported: IF_curr_exp (the core's neuron: current-based LIF with exponential synaptic currents),
SpikeSourceArray, SpikeSourcePoisson, StaticSynapse, and STDPMechanism with SpikePairRule +
AdditiveWeightDependence (the core's pair STDP). Parameter names are PyNN's own: the spikeforge Network
uses PyNN's units, so every translation is the identity.

Every other PyNN (and common sPyNNaker) model name exists here too, so a script gets past its imports
and attribute look-ups, and fails where it *uses* the model, with an UnsupportedFeatureError naming the
model, why the core cannot run it and what is supported.
"""

from __future__ import annotations

from pyNN.standardmodels import build_translations, cells, synapses

from spikeforge.pynn.errors import SUPPORTED_CELLS, SUPPORTED_SYNAPSES, UnsupportedFeatureError
from spikeforge.pynn import simulator


def _identity(*names):
    return build_translations(*[(n, n) for n in names])


# ---- cells -----------------------------------------------------------------------------------------
class IF_curr_exp(cells.IF_curr_exp):
    __doc__ = cells.IF_curr_exp.__doc__
    translations = _identity(*cells.IF_curr_exp.default_parameters)
    #: also the synaptic currents (nA), as sPyNNaker and NEST record them
    recordable = ["spikes", "v", "isyn_exc", "isyn_inh"]


class SpikeSourceArray(cells.SpikeSourceArray):
    __doc__ = cells.SpikeSourceArray.__doc__
    translations = _identity("spike_times")


class SpikeSourcePoisson(cells.SpikeSourcePoisson):
    __doc__ = cells.SpikeSourcePoisson.__doc__
    translations = _identity("rate", "start", "duration")


def _unsupported_cell(name: str, why: str, fix: str | None = None):
    """A class named like PyNN's cell type (and a subclass of it, so the deprecated
    ``Population(n, CellClass, params)`` form reaches it) whose construction explains the refusal."""

    def __init__(self, *args, **kwargs):
        raise UnsupportedFeatureError(f"cell type {name} ({why})", SUPPORTED_CELLS, fix)

    base = getattr(cells, name, object)
    return type(name, (base,), {"__init__": __init__, "__doc__": f"Not supported by spikeforge: {why}."})


_CURR = "the core's neuron is IF_curr_exp: a LIF with exponential synaptic currents"
_COND = "conductance-based synapses; the core is current-based"
IF_curr_alpha = _unsupported_cell("IF_curr_alpha", f"alpha-shaped synaptic currents; {_CURR}",
                                  "use IF_curr_exp with the same tau_syn_E/I")
IF_curr_delta = _unsupported_cell("IF_curr_delta", f"delta synapses; {_CURR}",
                                  "use IF_curr_exp with short tau_syn_E/I (e.g. one timestep)")
IF_cond_exp = _unsupported_cell("IF_cond_exp", _COND, "use IF_curr_exp")
IF_cond_alpha = _unsupported_cell("IF_cond_alpha", _COND, "use IF_curr_exp")
IF_cond_exp_gsfa_grr = _unsupported_cell("IF_cond_exp_gsfa_grr", _COND)
IF_facets_hardware1 = _unsupported_cell("IF_facets_hardware1", _COND)
HH_cond_exp = _unsupported_cell("HH_cond_exp", "Hodgkin-Huxley dynamics")
EIF_cond_alpha_isfa_ista = _unsupported_cell("EIF_cond_alpha_isfa_ista", "adaptive exponential dynamics")
EIF_cond_exp_isfa_ista = _unsupported_cell("EIF_cond_exp_isfa_ista", "adaptive exponential dynamics")
Izhikevich = _unsupported_cell("Izhikevich", "Izhikevich dynamics")
GIF_cond_exp = _unsupported_cell("GIF_cond_exp", "generalised IF dynamics")
PointNeuron = _unsupported_cell("PointNeuron", "composed point neurons")
SpikeSourcePoissonRefractory = _unsupported_cell(
    "SpikeSourcePoissonRefractory", "Poisson sources with dead time", "use SpikeSourcePoisson")
SpikeSourceGamma = _unsupported_cell("SpikeSourceGamma", "gamma-process sources",
                                     "generate the spike times and use SpikeSourceArray")
SpikeSourceInhGamma = _unsupported_cell("SpikeSourceInhGamma", "gamma-process sources",
                                        "generate the spike times and use SpikeSourceArray")


# ---- current sources -------------------------------------------------------------------------------
def _unsupported_source(name: str):
    def __init__(self, *args, **kwargs):
        raise UnsupportedFeatureError(
            f"current source {name}", "constant offsets through IF_curr_exp's i_offset parameter",
            "set i_offset on the population (pop.set(i_offset=...)), or drive it with a spike source")

    return type(name, (), {"__init__": __init__, "__doc__": "Not supported by spikeforge.pynn."})


DCSource = _unsupported_source("DCSource")
ACSource = _unsupported_source("ACSource")
StepCurrentSource = _unsupported_source("StepCurrentSource")
NoisyCurrentSource = _unsupported_source("NoisyCurrentSource")


# ---- synapses --------------------------------------------------------------------------------------
def check_weight_signs(weights, projection):
    """Weights of one projection share a sign; an excitatory projection's are >= 0.

    Inhibitory weights may be given either way: negative (PyNN's current-based convention, which
    PyNN's own check insists on) or positive (sPyNNaker's convention) -- the receptor gives the sign."""
    import numpy as np

    w = np.asarray(weights, dtype=float)
    if not ((w >= 0).all() or (w <= 0).all()):
        raise ValueError(f"projection {projection.label!r}: weights must be all positive or all negative")
    if projection.receptor_type == "excitatory" and (w < 0).any():
        raise ValueError(
            f"projection {projection.label!r}: negative weights on the excitatory receptor; give positive "
            "weights, and receptor_type='inhibitory' for inhibition")


class _MinDelay:
    parameter_checks = {"weight": check_weight_signs}

    def _get_minimum_delay(self):
        d = simulator.state.min_delay
        return simulator.state.dt if d == "auto" else d


class StaticSynapse(_MinDelay, synapses.StaticSynapse):
    __doc__ = synapses.StaticSynapse.__doc__
    translations = _identity("weight", "delay")


class STDPMechanism(_MinDelay, synapses.STDPMechanism):
    __doc__ = synapses.STDPMechanism.__doc__
    base_translations = _identity("weight", "delay", "dendritic_delay_fraction")

    def __init__(self, timing_dependence=None, weight_dependence=None, voltage_dependence=None,
                 dendritic_delay_fraction=1.0, weight=0.0, delay=None):
        if voltage_dependence is not None:
            raise UnsupportedFeatureError("STDPMechanism(voltage_dependence=...)", SUPPORTED_SYNAPSES)
        for given, cls, what in ((timing_dependence, SpikePairRule, "timing_dependence"),
                                 (weight_dependence, AdditiveWeightDependence, "weight_dependence")):
            if not isinstance(given, cls):
                got = "none" if given is None else type(given).__name__
                raise UnsupportedFeatureError(f"STDPMechanism({what}={got})", SUPPORTED_SYNAPSES)
        # copy: PyNN's _build_translations updates the class attribute in place
        self.base_translations = dict(STDPMechanism.base_translations)
        super().__init__(timing_dependence, weight_dependence, voltage_dependence,
                         dendritic_delay_fraction, weight, delay)

    def _build_translations(self):
        self.translations = dict(self.base_translations)
        for component in (self.timing_dependence, self.weight_dependence):
            self.translations.update(component.translations)


class SpikePairRule(synapses.SpikePairRule):
    __doc__ = synapses.SpikePairRule.__doc__
    translations = _identity("tau_plus", "tau_minus", "A_plus", "A_minus")
    possible_models = {"stdp_pair_additive"}


class AdditiveWeightDependence(synapses.AdditiveWeightDependence):
    __doc__ = synapses.AdditiveWeightDependence.__doc__
    translations = _identity("w_min", "w_max")
    possible_models = {"stdp_pair_additive"}


def _unsupported_synapse(name: str, base, what: str):
    def __init__(self, *args, **kwargs):
        raise UnsupportedFeatureError(f"{what} {name}", SUPPORTED_SYNAPSES)

    return type(name, (base,), {"__init__": __init__, "__doc__": "Not supported by spikeforge.pynn."})


TsodyksMarkramSynapse = _unsupported_synapse("TsodyksMarkramSynapse", object, "short-term plasticity")
ElectricalSynapse = _unsupported_synapse("ElectricalSynapse", object, "gap junctions")
SimpleStochasticSynapse = _unsupported_synapse("SimpleStochasticSynapse", object, "stochastic synapses")
StochasticTsodyksMarkramSynapse = _unsupported_synapse("StochasticTsodyksMarkramSynapse", object,
                                                       "stochastic synapses")
MultiQuantalSynapse = _unsupported_synapse("MultiQuantalSynapse", object, "stochastic synapses")
MultiplicativeWeightDependence = _unsupported_synapse(
    "MultiplicativeWeightDependence", synapses.STDPWeightDependence, "STDP weight dependence")
AdditivePotentiationMultiplicativeDepression = _unsupported_synapse(
    "AdditivePotentiationMultiplicativeDepression", synapses.STDPWeightDependence, "STDP weight dependence")
GutigWeightDependence = _unsupported_synapse("GutigWeightDependence", synapses.STDPWeightDependence,
                                             "STDP weight dependence")
Vogels2011Rule = _unsupported_synapse("Vogels2011Rule", synapses.STDPTimingDependence, "STDP timing rule")
SpikeNearestPairRule = _unsupported_synapse("SpikeNearestPairRule", synapses.STDPTimingDependence,
                                            "STDP timing rule")

#: The cell types a Population can be built from.
SUPPORTED_CELL_TYPES = (IF_curr_exp, SpikeSourceArray, SpikeSourcePoisson)
