"""Semantic validation of a Network: every rule the compiler and the core rely on, checked up front.

``validate`` collects *all* problems of a network and raises one NetworkValidationError listing them,
so a user fixes a file in one pass instead of one error per run. Every problem names the field by its
path in the network file format (``populations[1].neuron.tau_m``, see docs/network-format.md) -- the
same path for a network built in Python -- the object's label, the bad value and the fix.

Why each rule exists:
- time constants > 0, cm > 0: they divide in the decay factors exp(-dt/tau) and dt/cm;
- v_reset < v_thresh: otherwise a reset neuron is immediately above threshold again (a spike every
  refractory period);
- weights >= 0 with a ``receptor``: PyNN's convention, and the core keeps E and I currents apart by
  the receptor, not by the sign;
- delays whole multiples of dt, >= dt: the core delivers in whole steps and at the earliest into the
  next step (docs/core-spec.md, phase 7);
- one synapse per (pre, post) pair: the weight memory holds one cell per pair;
- plastic projections excitatory: the core's STDP updates only excitatory (positive) weights;
- spike times >= dt: step n's spikes carry time (n + 1) * dt (compiler/sources.py).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from spikeforge.compiler.network import (
    LIF_DEFAULTS,
    STDP,
    Connector,
    LIFParameters,
    Network,
    NetworkError,
    PoissonSource,
    Population,
    Projection,
    SpikeSource,
    ThresholdAdaptation,
)

#: Relative tolerance when checking that a delay (ms) is a whole number of steps.
DELAY_RTOL = 1e-6
RESET_MODES = ("to_v_reset", "subtract_threshold")
RECEPTORS = ("excitatory", "inhibitory")
#: How many problems one error message lists (the exception's ``issues`` holds all of them).
MAX_LISTED = 30


@dataclass
class Issue:
    """One problem: where (``path`` in the file format, ``obj`` = the labelled object), what, and the fix.
    ``line`` is filled in by the file loader when it knows the line of ``path``."""

    path: str
    obj: str
    problem: str
    fix: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return where + self.describe()

    def describe(self) -> str:
        """The problem without the line number."""
        obj = f" ({self.obj})" if self.obj else ""
        return f"{self.path}{obj}: {self.problem}; fix: {self.fix}"


class NetworkValidationError(NetworkError):
    """The network breaks one or more semantic rules. ``issues`` lists every problem, ``source`` is
    the file the network came from (or None)."""

    def __init__(self, issues: list[Issue], source: str | None = None, name: str | None = None):
        self.issues = list(issues)
        self.source = source
        self.name = name
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if len(self.issues) == 1:
            issue = self.issues[0]
            if self.source and issue.line:  # the same "file, line N: field: ..." as a file error
                return f"{self.source}, line {issue.line}: {issue.describe()}"
            return f"{where}{issue}"
        listed = [f"  - {i}" for i in self.issues[:MAX_LISTED]]
        if len(self.issues) > MAX_LISTED:
            listed.append(f"  ... and {len(self.issues) - MAX_LISTED} more")
        return f"{where}network {self.name!r} has {len(self.issues)} problems:\n" + "\n".join(listed)


def validate(network: Network, source: str | None = None) -> Network:
    """Check every semantic rule of ``network``; return it unchanged, or raise NetworkValidationError
    naming ``source`` (the file it came from), each object, field, bad value and fix."""
    issues = _Checker(network).run()
    if issues:
        raise NetworkValidationError(issues, source=None if source is None else str(source), name=network.name)
    return network


# ---- helpers ----------------------------------------------------------------------------------------
def _fmt(x) -> str:
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, np.ndarray):
        return np.array2string(x, threshold=8)
    return repr(x)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _float_array(x) -> np.ndarray | None:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        return None
    return a


class _Checker:
    def __init__(self, network: Network):
        self.net = network
        self.issues: list[Issue] = []
        self.dt: float | None = None

    def add(self, path: str, obj: str, problem: str, fix: str) -> None:
        self.issues.append(Issue(path, obj, problem, fix))

    def where_bad(self, arr: np.ndarray, ok: np.ndarray, path: str, obj: str, problem: str, fix: str, unit: str = "") -> bool:
        """Report the first element of ``arr`` where ``ok`` is False (NaN compares False: reported).
        Returns True when everything is ok."""
        ok = np.broadcast_to(np.asarray(ok, dtype=bool), arr.shape)
        if ok.all():
            return True
        unit = f" {unit}" if unit else ""
        if arr.ndim == 0:
            self.add(path, obj, f"= {_fmt(arr[()])}{unit}: {problem}", fix)
        else:
            bad = np.argwhere(~ok)
            idx = "".join(f"[{int(k)}]" for k in bad[0])
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            self.add(path + idx, obj, f"= {_fmt(arr[tuple(bad[0])])}{unit}{more}: {problem}", fix)
        return False

    def number(self, value, path: str, obj: str, unit: str) -> float | None:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            self.add(path, obj, f"= {value!r}: expected a number ({unit})", f"give a number in {unit}")
            return None
        return float(value)

    # ---- run ---------------------------------------------------------------------------------------
    def run(self) -> list[Issue]:
        net = self.net
        if not isinstance(net, Network):
            self.add("network", "", f"expected a Network, got {type(net).__name__}", "build a spikeforge Network")
            return self.issues
        if not isinstance(net.name, str) or not net.name:
            self.add("name", "", f"= {net.name!r}: expected a non-empty string", "name the network")
        dt = self.number(net.dt, "dt", "", "ms")
        if dt is not None:
            if not (math.isfinite(dt) and dt > 0):
                self.add("dt", "", f"= {_fmt(dt)} ms: the timestep must be a finite number > 0", "use e.g. dt: 1.0 (ms)")
            else:
                self.dt = dt
        for section, kinds in (("populations", (Population,)), ("sources", (SpikeSource, PoissonSource)),
                               ("projections", (Projection,))):
            items = getattr(net, section)
            if not isinstance(items, (list, tuple)):
                self.add(section, "", f"expected a list, got {type(items).__name__}", f"give a list of {section}")
                setattr(self, f"_{section}", [])
                continue
            good = []
            for k, item in enumerate(items):
                if not isinstance(item, kinds):
                    names = " or ".join(c.__name__ for c in kinds)
                    self.add(f"{section}[{k}]", "", f"expected a {names}, got {type(item).__name__}",
                             f"put only {names} objects in Network.{section}")
                else:
                    good.append((k, item))
            setattr(self, f"_{section}", good)
        self.sizes: dict[str, int] = {}
        for k, pop in self._populations:
            self.population(k, pop)
        for k, src in self._sources:
            self.source(k, src)
        self.labels()
        self.projections()
        return self.issues

    # ---- nodes -------------------------------------------------------------------------------------
    def node_common(self, path: str, node) -> tuple[str, int | None]:
        kind = "population" if isinstance(node, Population) else "source"
        label = node.label
        if not isinstance(label, str) or not label:
            self.add(f"{path}.label", "", f"= {label!r}: expected a non-empty string", f"give the {kind} a label")
        obj = f"{kind} {label!r}"
        size = node.size
        if not _is_int(size) or size < 1:
            self.add(f"{path}.size", obj, f"= {size!r}: expected a whole number >= 1",
                     f"give the number of neurons in the {kind}")
            return obj, None
        return obj, int(size)

    def per_neuron(self, value, size: int, path: str, obj: str, unit: str, what: str = "neuron") -> np.ndarray | None:
        a = _float_array(value)
        if a is None or a.dtype == object:
            self.add(path, obj, f"= {value!r}: expected a number ({unit}) or one number per {what}",
                     f"give a number in {unit} or a list of {size}")
            return None
        if a.ndim == 0:
            return a  # a scalar stays 0-d, so messages say "tau_m = -1.0", not "tau_m[0] (and 79 more)"
        if a.ndim != 1 or a.shape[0] != size:
            self.add(path, obj, f"has shape {a.shape}, but there are {size} {what}s",
                     f"give one value for all or exactly {size} values (one per {what})")
            return None
        return a

    def population(self, k: int, pop: Population) -> None:
        path = f"populations[{k}]"
        obj, size = self.node_common(path, pop)
        if size is not None and isinstance(pop.label, str):
            self.sizes.setdefault(pop.label, size)
        if not isinstance(pop.current_input, (bool, np.bool_)):
            self.add(f"{path}.current_input", obj, f"= {pop.current_input!r}: expected true or false",
                     "write current_input: true to feed the population a per-step input current")
        p = pop.params
        if not isinstance(p, LIFParameters):
            self.add(f"{path}.neuron", obj, f"expected LIFParameters, got {type(p).__name__}",
                     "give the neuron parameters as LIFParameters")
            return
        npath = f"{path}.neuron"
        if p.reset not in RESET_MODES:
            self.add(f"{npath}.reset", obj, f"= {p.reset!r}: unknown reset mode",
                     f"use one of {', '.join(RESET_MODES)}")
        ta = p.threshold_adaptation
        if ta is not None:
            tpath = f"{npath}.threshold_adaptation"
            if not isinstance(ta, ThresholdAdaptation):
                self.add(tpath, obj, f"expected ThresholdAdaptation or none, got {type(ta).__name__}",
                         "give {increment: mV, tau: ms}")
            else:
                inc = self.number(ta.increment, f"{tpath}.increment", obj, "mV")
                if inc is not None:
                    self.where_bad(np.asarray(inc), math.isfinite(inc) and inc >= 0, f"{tpath}.increment", obj,
                                   "the threshold increment per spike must be finite and >= 0",
                                   "use a non-negative increment (mV); 0 disables adaptation", "mV")
                tau = self.number(ta.tau, f"{tpath}.tau", obj, "ms")
                if tau is not None:
                    self.where_bad(np.asarray(tau), tau > 0, f"{tpath}.tau", obj,
                                   "the adaptation time constant must be > 0 (or inf = never decays)",
                                   "use a positive tau in ms, or .inf for no decay", "ms")
        if size is None:
            return
        values = {}
        for name, (_, unit) in LIF_DEFAULTS.items():
            a = self.per_neuron(getattr(p, name), size, f"{npath}.{name}", obj, unit)
            if a is None:
                continue
            values[name] = a
            if not self.where_bad(a, np.isfinite(a), f"{npath}.{name}", obj, "must be finite",
                                  f"give a finite value in {unit}", unit):
                values.pop(name)
        for name in ("tau_m", "tau_syn_E", "tau_syn_I", "cm"):
            if name in values:
                unit = LIF_DEFAULTS[name][1]
                what = "the capacitance" if name == "cm" else "a time constant"
                self.where_bad(values[name], values[name] > 0, f"{npath}.{name}", obj, f"{what} must be > 0",
                               f"use a positive value in {unit} (default {LIF_DEFAULTS[name][0]})", unit)
        if "tau_refrac" in values:
            self.where_bad(values["tau_refrac"], values["tau_refrac"] >= 0, f"{npath}.tau_refrac", obj,
                           "the refractory period must be >= 0", "use 0 ms or more", "ms")
        if "v_reset" in values and "v_thresh" in values:
            reset, thresh = (np.broadcast_to(values[k], (size,)) for k in ("v_reset", "v_thresh"))
            ok = reset < thresh
            if not ok.all():
                i = int(np.argmin(ok))
                which = "" if values["v_reset"].ndim == values["v_thresh"].ndim == 0 else (
                    f" (neuron {i}" + (f", and {int((~ok).sum()) - 1} more)" if (~ok).sum() > 1 else ")"))
                self.add(f"{npath}.v_reset", obj,
                         f"v_reset = {_fmt(reset[i])} mV is not below v_thresh = {_fmt(thresh[i])} mV{which}",
                         "set v_reset below v_thresh, or the neuron fires again right after every reset")
        if pop.v_init is not None:
            a = self.per_neuron(pop.v_init, size, f"{path}.v_init", obj, "mV")
            if a is not None:
                self.where_bad(a, np.isfinite(a), f"{path}.v_init", obj, "must be finite",
                               "give a finite initial membrane potential in mV, or leave it out (= v_rest)", "mV")

    def source(self, k: int, src) -> None:
        path = f"sources[{k}]"
        obj, size = self.node_common(path, src)
        if size is not None and isinstance(src.label, str):
            self.sizes.setdefault(src.label, size)
        if isinstance(src, SpikeSource):
            self.spike_source(path, obj, size, src)
        else:
            self.poisson_source(path, obj, size, src)

    def spike_source(self, path: str, obj: str, size: int | None, src: SpikeSource) -> None:
        times = src.spike_times
        tpath = f"{path}.spike_times"
        if not isinstance(times, (list, tuple, np.ndarray)):
            self.add(tpath, obj, f"expected a list of spike-time lists, got {type(times).__name__}",
                     "give one list of times (ms) per source neuron")
            return
        if size is not None and len(times) != size:
            self.add(tpath, obj, f"has {len(times)} lists, but the source has size {size}",
                     f"give exactly {size} lists of times (ms), one per source neuron ([] for a silent one)")
        for i, ts in enumerate(times):
            a = _float_array(ts)
            if a is None or a.dtype == object or a.ndim != 1:
                self.add(f"{tpath}[{i}]", obj, f"= {ts!r}: expected a list of numbers (ms)",
                         "give the spike times of this source neuron as a list of numbers")
                continue
            if not self.where_bad(a, np.isfinite(a), f"{tpath}[{i}]", obj, "spike times must be finite",
                                  "remove infinite or NaN times", "ms"):
                continue
            if self.dt is not None:
                self.where_bad(a, a >= self.dt * (1 - DELAY_RTOL), f"{tpath}[{i}]", obj,
                               f"spike times must be >= dt = {_fmt(self.dt)} ms (step n's spikes carry "
                               f"time (n+1)*dt)", f"shift the spike times so the first is >= {_fmt(self.dt)} ms", "ms")

    def poisson_source(self, path: str, obj: str, size: int | None, src: PoissonSource) -> None:
        ppath = f"{path}.poisson"
        if size is not None:
            rate = self.per_neuron(src.rate, size, f"{ppath}.rate", obj, "Hz", what="source neuron")
            if rate is not None:
                if self.where_bad(rate, np.isfinite(rate) & (rate >= 0), f"{ppath}.rate", obj,
                                  "a rate must be finite and >= 0", "give the rate in Hz (0 = silent)", "Hz"):
                    if self.dt is not None:
                        top = 1000.0 / self.dt
                        self.where_bad(rate, rate <= top, f"{ppath}.rate", obj,
                                       f"above 1000/dt = {_fmt(top)} Hz a source would need more than one "
                                       f"spike per step", "lower the rate, split it over several source "
                                       "neurons, or use a smaller dt", "Hz")
        if not _is_int(src.seed) or src.seed < 0:
            self.add(f"{ppath}.seed", obj, f"= {src.seed!r}: expected a whole number >= 0",
                     "give a non-negative integer seed")
        start = self.number(src.start, f"{ppath}.start", obj, "ms")
        if start is not None and not (math.isfinite(start) and start >= 0):
            self.add(f"{ppath}.start", obj, f"= {_fmt(start)} ms: expected a finite time >= 0",
                     "give the start time in ms (0 = from the first step)")
            start = None
        if src.stop is not None:
            stop = self.number(src.stop, f"{ppath}.stop", obj, "ms")
            if stop is not None and start is not None and not (stop > start and not math.isnan(stop)):
                self.add(f"{ppath}.stop", obj, f"= {_fmt(stop)} ms is not after start = {_fmt(start)} ms",
                         "give a stop time after start, or leave stop out (= until the end of the run)")

    def labels(self) -> None:
        seen: dict[str, str] = {}
        for section in ("populations", "sources"):
            for k, node in getattr(self, f"_{section}"):
                if not isinstance(node.label, str):
                    continue
                path = f"{section}[{k}].label"
                if node.label in seen:
                    self.add(path, "", f"= {node.label!r} is already the label of {seen[node.label]}",
                             "give every population and source a distinct label")
                else:
                    seen[node.label] = path.removesuffix(".label")

    # ---- projections -------------------------------------------------------------------------------
    def projections(self) -> None:
        pops = {p.label for _, p in self._populations}
        srcs = {s.label for _, s in self._sources}
        names: dict[str, int] = {}
        synapses: dict[tuple[str, str], list[tuple[int, str, np.ndarray]]] = {}
        for k, proj in self._projections:
            path = f"projections[{k}]"
            name = proj.name
            obj = f"projection {name!r}"
            if proj.label is not None and (not isinstance(proj.label, str) or not proj.label):
                self.add(f"{path}.label", obj, f"= {proj.label!r}: expected a non-empty string or none",
                         "give a label or leave it out")
            if name in names:
                self.add(f"{path}.label", obj,
                         f"the name {name!r} is already used by projections[{names[name]}]",
                         "give each projection a distinct label (a projection without one is named "
                         "'pre->post')")
            else:
                names[name] = k
            if proj.receptor not in RECEPTORS:
                self.add(f"{path}.receptor", obj, f"= {proj.receptor!r}: unknown receptor",
                         f"use one of {', '.join(RECEPTORS)}")
            pre_size = post_size = None
            if proj.pre in pops or proj.pre in srcs:
                pre_size = self.sizes.get(proj.pre)
            else:
                self.add(f"{path}.pre", obj, f"= {proj.pre!r}: no population or source has this label",
                         f"use one of {sorted(pops | srcs)}")
            if proj.post in pops:
                post_size = self.sizes.get(proj.post)
            elif proj.post in srcs:
                self.add(f"{path}.post", obj, f"= {proj.post!r} is a source; sources only send spikes",
                         "project onto a population")
            else:
                self.add(f"{path}.post", obj, f"= {proj.post!r}: no population has this label",
                         f"use one of {sorted(pops)}")
            if proj.plasticity is not None:
                self.stdp(path, obj, proj)
            exists = self.connectivity(path, obj, proj, pre_size, post_size)
            if exists is not None:
                synapses.setdefault((proj.pre, proj.post), []).append((k, name, exists))
        for (pre, post), group in synapses.items():
            for a in range(len(group)):
                for b in range(a + 1, len(group)):
                    (ka, na, ea), (kb, nb, eb) = group[a], group[b]
                    both = ea & eb
                    if both.any():
                        i, j = (int(x) for x in np.argwhere(both)[0])
                        self.add(f"projections[{kb}]", f"projection {nb!r}",
                                 f"connects {int(both.sum())} (pre, post) pairs that projections[{ka}] "
                                 f"({na!r}) also connects, e.g. {pre}[{i}] -> {post}[{j}]; the core has one "
                                 "synapse per pair", "merge the two projections into one, or remove the "
                                 "duplicate pairs from one of them")

    def stdp(self, path: str, obj: str, proj: Projection) -> None:
        s = proj.plasticity
        spath = f"{path}.plasticity.stdp"
        if not isinstance(s, STDP):
            self.add(f"{path}.plasticity", obj, f"expected STDP or none, got {type(s).__name__}",
                     "give plasticity: {stdp: {...}} or leave it out")
            return
        vals = {}
        for name, unit in (("tau_plus", "ms"), ("tau_minus", "ms"), ("A_plus", ""), ("A_minus", ""),
                           ("w_min", "nA"), ("w_max", "nA")):
            v = self.number(getattr(s, name), f"{spath}.{name}", obj, unit or "dimensionless")
            if v is None:
                continue
            if not math.isfinite(v):
                self.add(f"{spath}.{name}", obj, f"= {_fmt(v)}: must be finite", f"give a finite {name}")
                continue
            vals[name] = v
        for name in ("tau_plus", "tau_minus"):
            if name in vals and vals[name] <= 0:
                self.add(f"{spath}.{name}", obj, f"= {_fmt(vals[name])} ms: an STDP time constant must be > 0",
                         "use a positive time constant in ms (typically 10-40 ms)")
        for name in ("A_plus", "A_minus"):
            if name in vals and vals[name] < 0:
                self.add(f"{spath}.{name}", obj, f"= {_fmt(vals[name])}: learning amplitudes must be >= 0",
                         "give the magnitude; A_plus potentiates and A_minus depresses")
        if "w_min" in vals and vals["w_min"] < 0:
            self.add(f"{spath}.w_min", obj, f"= {_fmt(vals['w_min'])} nA: weights are magnitudes >= 0",
                     "use w_min >= 0; the receptor gives the sign")
        if "w_min" in vals and "w_max" in vals and vals["w_min"] > vals["w_max"]:
            self.add(f"{spath}.w_max", obj, f"= {_fmt(vals['w_max'])} nA is below w_min = {_fmt(vals['w_min'])} nA",
                     "make w_min <= w_max")
        if proj.receptor == "inhibitory":
            self.add(f"{path}.plasticity", obj, "inhibitory plasticity is not supported by the core",
                     "make the plastic projection excitatory, or remove its plasticity")

    def delays_ok(self, d: np.ndarray, path: str, obj: str) -> bool:
        if not self.where_bad(d, np.isfinite(d), path, obj, "delays must be finite", "give delays in ms", "ms"):
            return False
        if self.dt is None:
            return True
        steps = d / self.dt
        whole = np.round(steps)
        ok_min = whole >= 1
        if not self.where_bad(d, ok_min & (steps >= 1 - DELAY_RTOL), path, obj,
                              f"a delay must be at least one step, dt = {_fmt(self.dt)} ms",
                              f"use delays >= {_fmt(self.dt)} ms", "ms"):
            return False
        return self.where_bad(d, np.abs(steps - whole) <= DELAY_RTOL * np.maximum(whole, 1), path, obj,
                              f"delays must be whole multiples of dt = {_fmt(self.dt)} ms",
                              f"round the delay to a multiple of {_fmt(self.dt)} ms", "ms")

    def weights_ok(self, w: np.ndarray, path: str, obj: str) -> bool:
        if not self.where_bad(w, np.isfinite(w), path, obj, "weights must be finite", "give weights in nA", "nA"):
            return False
        return self.where_bad(w, w >= 0, path, obj,
                              "weights are magnitudes >= 0; the sign comes from the receptor",
                              "give the magnitude and use receptor 'inhibitory' for inhibition", "nA")

    def connectivity(self, path: str, obj: str, proj: Projection, pre_size, post_size) -> np.ndarray | None:
        """Check weights/delays or the connection list; return the (pre, post) synapse mask if sound."""
        c = proj.connector
        if c is not None:
            if not isinstance(c, Connector):
                self.add(f"{path}.connector", obj, f"expected a Connector or none, got {type(c).__name__}",
                         "leave Projection.connector as None")
            else:
                w = self.number(c.weight, f"{path}.weight", obj, "nA")
                d = self.number(c.delay, f"{path}.delay", obj, "ms")
                if (w is None or d is None or not self.weights_ok(np.asarray(w), f"{path}.weight", obj)
                        or not self.delays_ok(np.asarray(d), f"{path}.delay", obj)):
                    return None  # the expanded arrays repeat the same problem; report it once
        has_w, has_c = proj.weights is not None, proj.connections is not None
        if has_w == has_c:
            self.add(path, obj, "gives both weights and connections" if has_w else "gives no synapses",
                     "give exactly one of: a connector, a weight matrix (weights) or a connection list (connections)")
            return None
        if has_w:
            w = _float_array(proj.weights)
            if w is None or w.dtype == object or w.ndim != 2:
                self.add(f"{path}.weights", obj, f"expected a 2-D matrix of numbers (nA), got "
                         f"{'shape ' + str(w.shape) if w is not None else type(proj.weights).__name__}",
                         "give a (pre size, post size) matrix")
                return None
            if pre_size is not None and post_size is not None and w.shape != (pre_size, post_size):
                self.add(f"{path}.weights", obj,
                         f"has shape {w.shape}, expected (pre size, post size) = ({pre_size}, {post_size})",
                         f"give a {pre_size} x {post_size} matrix (rows = pre neurons, columns = post neurons)")
                return None
            sound = self.weights_ok(w, f"{path}.weights", obj)
            exists = (w != 0) | (proj.plasticity is not None)
            d = _float_array(proj.delays)
            if d is None or d.dtype == object or (d.ndim != 0 and d.shape != w.shape):
                self.add(f"{path}.delays", obj,
                         f"expected a number (ms) or a {w.shape[0]} x {w.shape[1]} matrix, got "
                         f"{'shape ' + str(d.shape) if d is not None else repr(proj.delays)}",
                         "give one delay for all synapses or a matrix shaped like the weights")
                return None
            # a delay only matters where a synapse exists (0 in a delay matrix elsewhere is fine)
            dpath = f"{path}.delays"
            if d.ndim == 0:
                sound &= self.delays_ok(d, dpath, obj)
            else:
                masked = np.where(exists, d, self.dt if self.dt is not None else 1.0)
                sound &= self.delays_ok(masked, dpath, obj)
            if pre_size is None or post_size is None or not sound:
                return None
            return exists
        conn = _float_array(proj.connections)
        cpath = f"{path}.connections"
        if conn is None or conn.dtype == object or conn.ndim != 2 or conn.shape[1] != 4:
            if conn is not None and conn.size == 0:
                conn = conn.reshape(0, 4)
            else:
                self.add(cpath, obj, f"expected rows of (pre index, post index, weight nA, delay ms), got "
                         f"{'shape ' + str(conn.shape) if conn is not None else type(proj.connections).__name__}",
                         "give an N x 4 array, one row per synapse")
                return None
        idx = conn[:, :2]
        if not self.where_bad(idx, np.isfinite(idx) & (idx == np.round(idx)) & (idx >= 0), cpath, obj,
                              "indices must be whole numbers >= 0", "columns 0 and 1 are neuron indices"):
            return None
        sound = True
        for col, size, what in ((0, pre_size, "pre"), (1, post_size, "post")):
            if size is not None:
                sound &= self.where_bad(conn[:, col], conn[:, col] < size, cpath, obj,
                                        f"{what} index (column {col}) out of range: {what} has {size} neurons",
                                        f"use {what} indices 0 .. {size - 1}")
        # 1-D columns: a reported index is the row, i.e. the path of the bad synapse
        sound &= self.weights_ok(conn[:, 2], cpath, obj)
        sound &= self.delays_ok(conn[:, 3], cpath, obj)
        if not sound or pre_size is None or post_size is None:
            return None
        i, j = idx[:, 0].astype(np.int64), idx[:, 1].astype(np.int64)
        flat = i * post_size + j
        uniq, first, counts = np.unique(flat, return_index=True, return_counts=True)
        if (counts > 1).any():
            dup = int(uniq[np.argmax(counts > 1)])
            rows = np.flatnonzero(flat == dup)
            self.add(cpath, obj, f"connects pre {dup // post_size} -> post {dup % post_size} in rows "
                     f"{rows.tolist()}; the core has one synapse per pair",
                     "keep one row per (pre, post) pair (sum the weights if you meant one stronger synapse)")
            return None
        exists = np.zeros((pre_size, post_size), dtype=bool)
        exists[i, j] = True
        return exists
