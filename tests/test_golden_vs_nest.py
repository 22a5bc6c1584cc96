"""NEST (through PyNN) as the independent referee: how NEST and PyNN time-stamp things (measured here,
not assumed), float reference == NEST to rounding, and golden vs NEST within docs/core-spec.md §11.

The alignment facts the NEST backend relies on are tests: if a NEST or PyNN release changes one of
them, the test that measures it fails and names it.
"""

from __future__ import annotations

import copy
import math
import pathlib
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("pyNN.nest", reason="NEST backend tests need PyNN + NEST (pip install 'spikeforge[nest]')")

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import networks_for_comparison as nets  # noqa: E402

from spikeforge.compiler.compile import compile  # noqa: E402
from spikeforge.compiler.network import (  # noqa: E402
    STDP,
    LIFParameters,
    Network,
    Population,
    Projection,
    SpikeSource,
    ThresholdAdaptation,
)
from spikeforge.compiler.propagators import propagators, refractory_steps  # noqa: E402
from spikeforge.sim.backends import BackendError, simulate  # noqa: E402

pytestmark = pytest.mark.nest
RECORD = ("v", "ie", "ii", "threshold")
CASES = {c.name: c for c in nets.all_cases() if c.nest}
#: float reference vs NEST: same formulas, same order, so only float64 rounding separates them
V_TOL, I_TOL, W_TOL = 1e-9, 1e-12, 1e-12


def nest(net, steps, **kw):
    return simulate(net, steps, backend="nest", **kw)


def flt(net, steps, **kw):
    return simulate(net, steps, backend="float", **kw)


# ---- how NEST and PyNN time-stamp (the facts nest_backend.py is built on) ------------------------
def one_spike_network(delay=2.0, spike_ms=1.0):
    """One source spike onto two neurons: 1 nA (subthreshold) and 30 nA (fires at once)."""
    net = Network(dt=1.0)
    net.add(SpikeSource("src", 1, [[spike_ms]]))
    net.add(Population("n", 2, LIFParameters(tau_refrac=2.0, tau_syn_E=1.0)))
    net.add(Projection("src", "n", weights=np.array([[1.0, 30.0]]), delays=delay))
    return net


@pytest.mark.parametrize("spike_ms, delay", [(1.0, 1.0), (1.0, 3.0), (7.0, 2.0)])
def test_one_input_spike_moves_current_then_membrane_then_fires(spike_ms, delay):
    """A source spike at t (step s = t/dt - 1) with delay d: the current jumps in step s + d, the
    membrane first moves in step s + d + 1, and 30 nA make the neuron fire in that same step -- in
    NEST as in the core's spec. A spike at 1 ms is in the very first step (the padding step)."""
    s, d = int(spike_ms) - 1, int(delay)
    res = nest(one_spike_network(delay, spike_ms), 20, record=("v", "ie"))
    ie, v = res.variables["n"]["ie"], res.variables["n"]["v"]
    assert np.flatnonzero(ie[:, 0])[0] == s + d and np.flatnonzero(ie[:, 1])[0] == s + d
    assert ie[s + d].tolist() == pytest.approx([1.0, 30.0])
    assert np.flatnonzero(v[:, 0] != -65.0)[0] == s + d + 1
    assert np.all(v[: s + d + 1, 1] == -65.0)
    assert np.flatnonzero(res.spikes["n"][:, 1]).tolist() == [s + d + 1]
    assert not res.spikes["n"][:, 0].any()


def test_nest_rounds_refractory_periods_up():
    taus = [0.0, 0.1, 0.5, 1.0, 1.4, 2.0, 2.5, 3.0]
    net = Network(dt=1.0)
    net.add(Population("n", len(taus), LIFParameters(i_offset=100.0, tau_refrac=np.array(taus))))
    res = nest(net, 40)
    for k, tau in enumerate(taus):
        isi = np.diff(np.flatnonzero(res.spikes["n"][:, k]))
        assert np.all(isi == refractory_steps(tau, 1.0) + 1), (tau, isi)


def test_current_input_reaches_the_membrane_in_its_own_step():
    """Steps 0 and 1 are the awkward ones (PyNN's StepCurrentSource cannot reach them): v of step n
    moves by exactly P20 * I[n]."""
    net = Network(dt=0.5)
    net.add(Population("n", 1, LIFParameters(v_thresh=100.0), current_input=True))
    cur = np.zeros((12, 1))
    cur[0], cur[1], cur[5] = 1.0, -2.0, 0.5
    v = nest(net, 12, record=("v",), currents={"n": cur}).variables["n"]["v"][:, 0]
    p = propagators(20.0, 1.0, 5.0, 5.0, 0.5)
    u, expected = 0.0, []
    for n in range(12):
        u = p["P22"] * u + p["P20"] * cur[n, 0]
        expected.append(-65.0 + u)
    assert np.abs(v - np.array(expected)).max() < V_TOL


def test_stdp_in_nest_times_pairs_at_the_synapse_and_applies_potentiation_lazily():
    """NEST stdp_synapse: the post spike reaches the synapse d after emission; potentiation is applied
    at the next pre spike. Pre 20 ms, post 25 ms, pre 90 ms, delay 3 ms: +A+ e^{-8/20} - A- e^{-62/15}."""
    rule = STDP(tau_plus=20.0, tau_minus=15.0, A_plus=0.1, A_minus=0.12, w_min=0.0, w_max=1.0)
    net = Network(dt=1.0)
    net.add(SpikeSource("pre", 1, [[20.0, 90.0]]))
    net.add(SpikeSource("teacher", 1, [[23.0]]))
    net.add(Population("post", 1, LIFParameters(tau_syn_E=1.0, tau_m=10.0, tau_refrac=1.0)))
    net.add(Projection("teacher", "post", weights=np.array([[40.0]])))
    net.add(Projection("pre", "post", weights=np.array([[0.5]]), delays=3.0, plasticity=rule, label="syn"))
    res = nest(net, 120)
    assert np.flatnonzero(res.spikes["post"][:, 0]).tolist() == [24]
    expected = 0.5 + 0.1 * math.exp(-8 / 20) - 0.12 * math.exp(-62 / 15)
    assert res.weights["syn"][0, 0] == pytest.approx(expected, abs=W_TOL)
    # up to 89 ms (before the second pre spike) NEST shows no potentiation yet
    assert nest(net, 89).weights["syn"][0, 0] == 0.5


# ---- float reference == NEST -------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_float_reference_equals_nest(name):
    case = CASES[name]
    ref = flt(case.network, case.steps, record=("v", "ie", "ii"), currents=case.currents, stdp_convention="nest")
    got = nest(case.network, case.steps, record=("v", "ie", "ii"), currents=case.currents)
    for label in ref.spikes:
        assert np.array_equal(ref.spikes[label], got.spikes[label]), label
        assert np.abs(ref.variables[label]["v"] - got.variables[label]["v"]).max() < V_TOL
        for var in ("ie", "ii"):
            assert np.abs(ref.variables[label][var] - got.variables[label][var]).max() < I_TOL
    for proj, w in ref.weights.items():
        assert np.abs(w - got.weights[proj]).max() < W_TOL


@pytest.mark.parametrize("name", ["feedforward", "current_input"])
def test_float_reference_equals_nest_at_a_step_that_is_not_a_binary_fraction(name):
    """dt = 0.1 ms: spike times like 3 * 0.1 = 0.30000000000000004 ms must land in their own step."""
    case = CASES[name]
    net = copy.deepcopy(case.network)
    net.dt = 0.1
    for src in net.sources:
        src.rate = 200.0
    for proj in net.projections:
        proj.delays = 0.3
    ref = flt(net, 600, record=("v",), currents=case.currents)
    got = nest(net, 600, record=("v",), currents=case.currents)
    for label in ref.spikes:
        assert ref.spikes[label].any()
        assert np.array_equal(ref.spikes[label], got.spikes[label])
        assert np.abs(ref.variables[label]["v"] - got.variables[label]["v"]).max() < V_TOL


# ---- golden vs NEST ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not nets.plastic(c)])
def test_golden_agrees_with_nest(name):
    """The bound is computed along NEST's own trajectory; recurrent totals are compared against the
    spread of NEST runs perturbed by the bound."""
    case = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile(case.network)
        golden = simulate(case.network, case.steps, backend="golden", record=RECORD, currents=case.currents,
                          compiled=compiled)
    ref = nest(case.network, case.steps, record=RECORD, currents=case.currents)
    bound = nets.golden_bound(compiled, case.steps, ref, currents=case.currents)
    ensemble = None
    if not case.feedforward:
        spread = float(bound.v[: bound.first_grazing_any + 1].max())
        ensemble = nets.perturbed_totals(case, max(spread, 0.1), runs=4, backend="nest")
    assert nets.agreement_failures(case, bound, ref, golden, ensemble) == []


def test_golden_stdp_agrees_with_nest_through_the_float_reference():
    """NEST times STDP pairs differently (section 6 of docs/core-spec.md §11), so golden and NEST meet in
    the float reference: NEST == float('nest') to rounding, golden == float('core') within the bound,
    and the two float conventions differ exactly as the pair rule predicts."""
    case = nets.stdp_pair()
    got = nest(case.network, case.steps)
    nest_like = flt(case.network, case.steps, stdp_convention="nest")
    core = flt(case.network, case.steps, record=RECORD)
    assert np.abs(got.weights["plastic"] - nest_like.weights["plastic"]).max() < W_TOL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = compile(case.network, **nets.FINE_STDP)
        golden = simulate(case.network, case.steps, backend="golden", record=RECORD, compiled=compiled)
    bound = nets.golden_bound(compiled, case.steps, core)
    assert nets.agreement_failures(case, bound, core, golden) == []
    # the two conventions, summed pair by pair (all-to-all): the core pairs emission times; NEST pairs
    # t_post + delay with t_pre and has applied only the potentiation up to the last pre spike
    rule = case.extra["rule"]
    pre = np.array(case.network.sources[0].spike_times[0])
    post = np.array(case.extra["post_times"])
    assert core.weights["plastic"][0, 0] == pytest.approx(0.5 + pair_rule(pre, post, rule), abs=1e-9)
    assert got.weights["plastic"][0, 0] == pytest.approx(0.5 + pair_rule(pre, post, rule, delay=1.0, lazy=True),
                                                         abs=1e-9)


def pair_rule(pre, post, rule, delay=0.0, lazy=False):
    """Total weight change of all-to-all additive pair STDP; the post spikes count at t_post + delay.
    ``lazy``: potentiation by a post spike counts only once a pre spike at or after it has come."""
    dw = 0.0
    for tq in post + delay:
        if lazy and not np.any(pre >= tq):
            continue
        dw += rule.A_plus * rule.w_max * np.exp(-(tq - pre[pre < tq]) / rule.tau_plus).sum()
    for tp in pre:
        q = post + delay
        dw -= rule.A_minus * rule.w_max * np.exp(-(tp - q[q < tp]) / rule.tau_minus).sum()
    return dw


# ---- the backend as a tool -----------------------------------------------------------------------
@pytest.mark.parametrize("feature, change, phrase", [
    ("adaptation", lambda p: setattr(p.params, "threshold_adaptation", ThresholdAdaptation()), "threshold adaptation"),
    ("subtract", lambda p: setattr(p.params, "reset", "subtract_threshold"), "subtract_threshold"),
    ("v_init", lambda p: setattr(p, "v_init", -40.0), "v_init at or above v_thresh"),
])
def test_features_nest_cannot_express_are_refused_by_name(feature, change, phrase):
    net = Network(dt=1.0)
    pop = net.add(Population("cells", 2, LIFParameters()))
    change(pop)
    with pytest.raises(BackendError, match=phrase) as info:
        nest(net, 10)
    assert "--backend float" in str(info.value)


def test_stdp_rules_nest_cannot_express_are_refused():
    net = Network(dt=1.0)
    net.add(SpikeSource("s", 1, [[5.0]]))
    net.add(Population("p", 1, LIFParameters()))
    net.add(Projection("s", "p", weights=np.array([[0.5]]), plasticity=STDP(w_min=0.1)))
    with pytest.raises(BackendError, match="w_min = 0.1"):
        nest(net, 10)
    net.projections[0].plasticity = STDP(tau_minus=20.0)
    net.add(SpikeSource("t", 1, [[5.0]]))
    net.add(Projection("t", "p", weights=np.array([[0.5]]), plasticity=STDP(tau_minus=30.0)))
    with pytest.raises(BackendError, match="different tau_minus"):
        nest(net, 10)


def test_missing_pynn_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyNN.nest", None)
    net = Network(dt=1.0)
    net.add(Population("p", 1, LIFParameters()))
    with pytest.raises(BackendError, match=r"pip install 'pynn==0.13.\*' nest-simulator"):
        nest(net, 5)


def test_repeated_runs_are_independent_and_identical():
    case = CASES["feedforward"]
    first = nest(case.network, 200, record=("v",))
    other = nest(one_spike_network(), 30)
    again = nest(case.network, 200, record=("v",))
    assert np.array_equal(first.spikes["out"], again.spikes["out"])
    assert np.array_equal(first.variables["out"]["v"], again.variables["out"]["v"])
    assert other.spikes["n"].sum() == 1  # only the 30 nA neuron, once
    assert first.backend == "nest" and first.meta["nest_version"]


def test_v_init_and_threshold_recording():
    net = Network(dt=1.0)
    net.add(Population("p", 2, LIFParameters(v_thresh=np.array([-50.0, -45.0])), v_init=np.array([-60.0, -70.0])))
    res = nest(net, 30, record=("v", "threshold"))
    t = np.arange(1, 31)[:, None]
    assert np.abs(res.variables["p"]["v"] - (-65.0 + np.array([5.0, -5.0]) * np.exp(-t / 20.0))).max() < 1e-9
    assert np.all(res.variables["p"]["threshold"] == np.array([-50.0, -45.0]))
    assert nest(net, 0).spikes["p"].shape == (0, 2)
