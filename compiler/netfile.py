"""Network files: ``load_network`` / ``save_network`` for YAML (.yaml/.yml) and JSON (.json).

The format (docs/network-format.md) is versioned by the top-level key ``spikeforge: 1`` and written
for humans: PyNN names and units, scalars or per-neuron lists, connectors, and large matrices in a
binary side file (.npz or HDF5) next to the network file, read back bit-exactly.

Reading is table-driven: ``SCHEMA`` lists the fields of every object with their kind and unit. The
reader checks shapes and types here (unknown fields get a difflib suggestion, wrong types name the
expected unit) and leaves the *semantic* rules to ``spikeforge.compiler.validate``; either way every
message names the file, the line when known, the field's path (``populations[1].neuron.tau_m``) and
the fix.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

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
from spikeforge.compiler.validate import NetworkValidationError, validate

#: The format version this module writes, and every version it reads.
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
#: Arrays with more elements than this go to the side file when saving.
INLINE_LIMIT = 1000
YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)
NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5")


class NetworkFileError(NetworkError):
    """A network file cannot be read or written. Attributes: ``file``, ``path`` (of the field, e.g.
    ``projections[2].weight``), ``line`` (1-based, when known), ``problem`` and ``fix``."""

    def __init__(self, file, path: str, problem: str, fix: str, line: int | None = None):
        self.file, self.path, self.problem, self.fix, self.line = str(file), path, problem, fix, line
        where = f"{self.file}, line {line}" if line else self.file
        field_ = f" {path}:" if path else ""
        super().__init__(f"{where}:{field_} {problem}; fix: {fix}")


# ---- the schema ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One field of a file object: its kind (how it is read), unit, whether it is required, and a
    one-line description (also what docs/network-format.md tabulates)."""

    kind: str
    unit: str = ""
    required: bool = False
    doc: str = ""


_NEURON_FIELDS = {
    name: Field("per_neuron", unit, doc=f"default {default}") for name, (default, unit) in LIF_DEFAULTS.items()
}
SCHEMA: dict[str, dict[str, Field]] = {
    "network": {
        "spikeforge": Field("int", required=True, doc="format version (1)"),
        "name": Field("str", doc="network name (default: the file's stem)"),
        "dt": Field("number", "ms", doc="timestep (default 1.0)"),
        "populations": Field("list", doc="LIF populations"),
        "sources": Field("list", doc="spike sources"),
        "projections": Field("list", doc="projections"),
    },
    "population": {
        "label": Field("str", required=True, doc="unique among populations and sources"),
        "size": Field("int", required=True, doc="number of neurons"),
        "neuron": Field("mapping", doc="IF_curr_exp parameters, reset, threshold_adaptation"),
        "v_init": Field("per_neuron", "mV", doc="initial membrane potential (default v_rest)"),
        "current_input": Field("bool", doc="take a per-step input current from the host (default false)"),
    },
    "neuron": {
        **_NEURON_FIELDS,
        "reset": Field("enum:to_v_reset,subtract_threshold", doc="default to_v_reset"),
        "threshold_adaptation": Field("mapping", doc="adaptive threshold (default none)"),
    },
    "threshold_adaptation": {
        "increment": Field("number", "mV", doc="threshold raise per spike (default 0.05)"),
        "tau": Field("number", "ms", doc="decay time constant, .inf = no decay (default 1000.0)"),
    },
    "source": {
        "label": Field("str", required=True, doc="unique among populations and sources"),
        "size": Field("int", required=True, doc="number of source neurons"),
        "poisson": Field("mapping", doc="Poisson spike trains (give poisson or spike_times)"),
        "spike_times": Field("spike_times", "ms", doc="explicit spike times, one list per source neuron"),
    },
    "poisson": {
        "rate": Field("per_neuron", "Hz", doc="rate, scalar or per source neuron (default 10.0)"),
        "seed": Field("int", doc="random seed (default 0)"),
        "start": Field("number", "ms", doc="no spikes at times <= start (default 0.0)"),
        "stop": Field("number", "ms", doc="no spikes at times > stop (default: none = until the end)"),
    },
    "projection": {
        "label": Field("str", doc="unique name (default 'pre->post')"),
        "pre": Field("str", required=True, doc="population or source label"),
        "post": Field("str", required=True, doc="population label"),
        "receptor": Field("enum:excitatory,inhibitory", doc="default excitatory"),
        "connector": Field("connector", doc="all_to_all | one_to_one | {fixed_probability: {p, seed}}"),
        "weight": Field("number", "nA", doc="the weight of every synapse of a connector"),
        "delay": Field("number", "ms", doc="the delay of every synapse of a connector (default 1.0)"),
        "weights": Field("matrix", "nA", doc="dense (pre size, post size) matrix, 0 = no synapse"),
        "delays": Field("matrix_or_number", "ms", doc="with weights: scalar or matrix (default 1.0)"),
        "connections": Field("connections", doc="rows [pre index, post index, weight nA, delay ms]"),
        "plasticity": Field("mapping", doc="{stdp: {...}} or none"),
    },
    "connector_options": {
        "p": Field("number", doc="connection probability (fixed_probability)"),
        "seed": Field("int", doc="random seed (fixed_probability, default 0)"),
        "allow_self_connections": Field("bool", doc="connect i -> i when pre is post (default true)"),
    },
    "plasticity": {"stdp": Field("mapping", doc="pair STDP")},
    "stdp": {
        "tau_plus": Field("number", "ms", doc="default 20.0"),
        "tau_minus": Field("number", "ms", doc="default 20.0"),
        "A_plus": Field("number", doc="default 0.01 (fraction of w_max)"),
        "A_minus": Field("number", doc="default 0.012 (fraction of w_max)"),
        "w_min": Field("number", "nA", doc="default 0.0"),
        "w_max": Field("number", "nA", doc="default 1.0"),
    },
    "side_file": {
        "file": Field("str", required=True, doc="path of an .npz or .h5 file, relative to the network file"),
        "key": Field("str", required=True, doc="array name in the .npz / dataset path in the .h5"),
    },
}
CONNECTOR_KINDS = ("all_to_all", "one_to_one", "fixed_probability")
_CONNECTOR_OPTIONS = {
    "all_to_all": ("allow_self_connections",),
    "one_to_one": (),
    "fixed_probability": ("p", "seed", "allow_self_connections"),
}


# ---- YAML with line numbers ------------------------------------------------------------------------
class _Map(dict):
    """A YAML mapping that remembers its line and the line of each key (for error messages)."""

    line: int | None = None
    key_lines: dict


class _Seq(list):
    line: int | None = None
    item_lines: list


_YamlBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_YamlBase):  # type: ignore[misc, valid-type]
    pass


def _construct_map(loader, node):
    loader.flatten_mapping(node)
    out = _Map()
    out.line, out.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise _SyntaxProblem(line, f"a key must be a plain name, got {key!r}")
        if key in out:
            raise _SyntaxProblem(line, f"the key {key!r} appears twice in one mapping (also line {out.key_lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_seq(loader, node):
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line, out.item_lines = node.start_mark.line + 1, [c.start_mark.line + 1 for c in node.value]
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _SyntaxProblem(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line, self.message = line, message


def _parse_text(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NetworkFileError(path, "", "the network file does not exist", "check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NetworkFileError(path, "", f"cannot read the file ({e})", "give a UTF-8 text file") from None
    if path.suffix.lower() in JSON_SUFFIXES:
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise NetworkFileError(path, "", f"JSON syntax error: {e.msg} (column {e.colno})",
                                   "fix the JSON syntax", line=e.lineno) from None
    try:
        return yaml.load(text, Loader=_LineLoader)
    except _SyntaxProblem as e:
        raise NetworkFileError(path, "", e.message, "give each key once", line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise NetworkFileError(path, "", f"YAML syntax error: {problem}",
                               "fix the YAML syntax (indentation, ':' after keys, matching brackets)",
                               line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise NetworkFileError(path, "", f"YAML error: {e}", "fix the YAML syntax") from None


# ---- reading -----------------------------------------------------------------------------------------
_NUMBER_WITH_UNIT = re.compile(
    r"^\s*([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf(?:inity)?|\.inf|nan))\s*([A-Za-zµ]+)?\s*$",
    re.IGNORECASE,
)


def _type_name(value) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class _Reader:
    """Turns the parsed document into a Network; knows the file, for messages and side files."""

    def __init__(self, path: Path):
        self.path = path
        self.base = path.parent
        self._side_cache: dict[Path, Any] = {}

    # -- errors and locations --
    def fail(self, path: str, problem: str, fix: str, node=None, key=None):
        raise NetworkFileError(self.path, path, problem, fix, line=_line_of(node, key))

    def fields(self, value, path: str, table: str, node=None, key=None) -> dict:
        """Check that ``value`` is a mapping whose keys are fields of SCHEMA[table], with the
        required ones present."""
        spec = SCHEMA[table]
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping with fields {', '.join(spec)}, got {_type_name(value)}",
                      f"write the {table.replace('_', ' ')} as 'field: value' lines", node, key)
        for k in value:
            if k not in spec:
                close = difflib.get_close_matches(str(k), list(spec), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail(f"{path}.{k}" if path else str(k), f"unknown field {k!r}",
                          f"{hint}allowed fields here: {', '.join(spec)}", value, k)
        for name, f in spec.items():
            if f.required and name not in value:
                self.fail(path or "(top level)", f"missing required field {name!r} ({f.doc})",
                          f"add '{name}: ...'", node if node is not None else value, key)
        return value

    # -- scalars --
    def number(self, value, path: str, unit: str, node, key) -> float:
        unit_text = unit or "dimensionless"
        if isinstance(value, bool) or value is None:
            self.fail(path, f"expected a number ({unit_text}), got {_type_name(value)}",
                      f"write a number{' in ' + unit if unit else ''}, e.g. {path.rsplit('.', 1)[-1]}: 1.0", node, key)
        if isinstance(value, numbers.Real):
            return float(value)
        if isinstance(value, str):
            m = _NUMBER_WITH_UNIT.match(value)
            if m:
                num, given = m.groups()
                num = num.replace(".inf", "inf").replace(".INF", "inf")
                if given is None or given == unit:
                    return float(num)
                expected = f"in {unit}" if unit else "without a unit"
                self.fail(path, f"expected a number {expected}, got {value!r}: the unit {given!r} is not {unit_text}",
                          f"write the value {expected} (spikeforge does not convert units)", node, key)
        self.fail(path, f"expected a number ({unit_text}), got {_type_name(value)}",
                  f"write a number{' in ' + unit if unit else ''}", node, key)

    def integer(self, value, path: str, node, key) -> int:
        if isinstance(value, bool) or not (
            isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
        ):
            self.fail(path, f"expected a whole number, got {_type_name(value)}", "write an integer like 3", node, key)
        return int(value)

    def boolean(self, value, path: str, node, key) -> bool:
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {_type_name(value)}", "write true or false", node, key)
        return value

    def string(self, value, path: str, node, key) -> str:
        if not isinstance(value, str) or not value:
            self.fail(path, f"expected a non-empty name, got {_type_name(value)}", "write a name", node, key)
        return value

    def enum(self, value, path: str, choices: tuple[str, ...], node, key) -> str:
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.fail(path, f"unknown value {value!r}", f"{hint}use one of: {', '.join(choices)}", node, key)
        return value

    # -- arrays --
    def array(self, value, path: str, unit: str, node, key, ndim: int | None = None, what: str = "") -> np.ndarray:
        """An inline nested list or a side-file reference -> float64 array (checked ``ndim``)."""
        if isinstance(value, dict):
            arr = self.side_array(value, path, node, key)
        elif isinstance(value, list):
            arr = self.inline(value, path, unit, node, key)
        else:
            self.fail(path, f"expected {what or 'a list of numbers'}, got {_type_name(value)}",
                      "write a list like [1.0, 2.0] or {file: data.npz, key: name}", node, key)
        if ndim is not None and arr.ndim != ndim and not (ndim == 2 and arr.size == 0):
            self.fail(path, f"expected {what or f'a {ndim}-D array'}, got an array of shape {arr.shape}",
                      f"give {what or f'a {ndim}-D array'}", node, key)
        return arr

    def inline(self, value: list, path: str, unit: str, node, key) -> np.ndarray:
        def walk(x, p, parent, k):
            if isinstance(x, list):
                return [walk(item, f"{p}[{i}]", x, i) for i, item in enumerate(x)]
            if isinstance(x, numbers.Real) and not isinstance(x, bool):
                return float(x)
            return self.number(x, p, unit, parent, k)

        nested = walk(value, path, node, key)
        try:
            return np.array(nested, dtype=np.float64)
        except ValueError:
            lengths = sorted({len(r) if isinstance(r, list) else 0 for r in nested})
            self.fail(path, f"rows of different lengths ({', '.join(map(str, lengths))}; 0 = a number, "
                      "not a row) or mixed numbers and lists",
                      "make every row the same length (a rectangular matrix)", node, key)

    def side_array(self, ref: dict, path: str, node, key) -> np.ndarray:
        self.fields(ref, path, "side_file", node, key)
        name = self.string(ref["file"], f"{path}.file", ref, "file")
        dataset = self.string(ref["key"], f"{path}.key", ref, "key")
        file = (self.base / name).resolve()
        suffix = file.suffix.lower()
        if suffix not in NPZ_SUFFIXES + HDF5_SUFFIXES:
            self.fail(f"{path}.file", f"{name!r} is neither .npz nor .h5/.hdf5",
                      "store arrays in an .npz (numpy.savez) or an HDF5 file", ref, "file")
        if not file.exists():
            self.fail(f"{path}.file", f"side file {name!r} not found (looked for {file})",
                      "put the file next to the network file, or correct the path (relative to the network file)",
                      ref, "file")
        try:
            if file not in self._side_cache:
                if suffix in NPZ_SUFFIXES:
                    self._side_cache[file] = np.load(file, allow_pickle=False)
                else:
                    import h5py

                    self._side_cache[file] = h5py.File(file, "r")
            store = self._side_cache[file]
            if suffix in NPZ_SUFFIXES:
                keys = list(store.files)
                found = dataset in keys
            else:
                found = dataset in store and hasattr(store[dataset], "shape")
                keys = []
                store.visititems(lambda n, obj: keys.append(n) if hasattr(obj, "shape") else None)
            if not found:
                close = difflib.get_close_matches(dataset, keys, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail(f"{path}.key", f"{name!r} has no array {dataset!r}",
                          f"{hint}arrays in the file: {', '.join(keys[:20]) or 'none'}", ref, "key")
            raw = np.asarray(store[dataset][()])
        except NetworkFileError:
            raise
        except Exception as e:  # a corrupt or foreign file: say which and why
            self.fail(f"{path}.file", f"cannot read {dataset!r} from {name!r}: {e}",
                      "write the side file with numpy.savez or h5py", ref, "file")
        if raw.dtype.kind not in "iuf":
            self.fail(f"{path}.key", f"array {dataset!r} in {name!r} has dtype {raw.dtype}, expected numbers",
                      "store a float or integer array", ref, "key")
        return raw.astype(np.float64)  # float32/int -> float64 is exact; float64 is untouched

    def close(self):
        for store in self._side_cache.values():
            store.close()

    def per_neuron(self, value, path: str, unit: str, node, key) -> float | np.ndarray:
        if isinstance(value, (list, dict)):
            return self.array(value, path, unit, node, key, ndim=1, what="a list with one number per neuron")
        return self.number(value, path, unit, node, key)

    # -- objects --
    def network(self, doc) -> Network:
        if not isinstance(doc, dict):
            self.fail("", f"the top level must be a mapping starting with 'spikeforge: {FORMAT_VERSION}', "
                      f"got {_type_name(doc)}", "see docs/network-format.md for the layout", doc)
        if "spikeforge" not in doc:
            self.fail("spikeforge", "missing the format version", f"add 'spikeforge: {FORMAT_VERSION}' as the first line", doc)
        version = doc["spikeforge"]
        if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
            self.fail("spikeforge", f"format version {version!r} is not supported",
                      f"this spikeforge reads format versions {', '.join(map(str, SUPPORTED_VERSIONS))}; "
                      "write the file for one of them or upgrade spikeforge", doc, "spikeforge")
        self.fields(doc, "", "network")
        net = Network(name=self.path.stem)
        if "name" in doc:
            net.name = self.string(doc["name"], "name", doc, "name")
        if "dt" in doc:
            net.dt = self.number(doc["dt"], "dt", "ms", doc, "dt")
        for section, read in (("populations", self.population), ("sources", self.source),
                              ("projections", None)):
            items = doc.get(section)
            if items is None:
                continue
            if not isinstance(items, list):
                self.fail(section, f"expected a list, got {_type_name(items)}",
                          f"write each of the {section} as a '- ' item", doc, section)
            if read is not None:
                getattr(net, section).extend(read(item, f"{section}[{k}]", items, k) for k, item in enumerate(items))
        sizes = {n.label: n.size for n in [*net.populations, *net.sources]}
        for k, item in enumerate(doc.get("projections") or []):
            net.projections.append(self.projection(item, f"projections[{k}]", doc["projections"], k, sizes))
        return net

    def population(self, m, path, parent, index) -> Population:
        self.fields(m, path, "population", parent, index)
        pop = Population(label=self.string(m["label"], f"{path}.label", m, "label"),
                         size=self.integer(m["size"], f"{path}.size", m, "size"))
        if "neuron" in m:
            pop.params = self.neuron(m["neuron"], f"{path}.neuron", m, "neuron")
        if m.get("v_init") is not None:
            pop.v_init = self.per_neuron(m["v_init"], f"{path}.v_init", "mV", m, "v_init")
        if "current_input" in m:
            pop.current_input = self.boolean(m["current_input"], f"{path}.current_input", m, "current_input")
        return pop

    def neuron(self, m, path, parent, key) -> LIFParameters:
        if m is None:
            return LIFParameters()
        self.fields(m, path, "neuron", parent, key)
        params = LIFParameters()
        for name, f in _NEURON_FIELDS.items():
            if name in m:
                setattr(params, name, self.per_neuron(m[name], f"{path}.{name}", f.unit, m, name))
        if "reset" in m:
            params.reset = self.enum(m["reset"], f"{path}.reset", ("to_v_reset", "subtract_threshold"), m, "reset")
        ta = m.get("threshold_adaptation")
        if ta is not None:
            tpath = f"{path}.threshold_adaptation"
            self.fields(ta, tpath, "threshold_adaptation", m, "threshold_adaptation")
            params.threshold_adaptation = ThresholdAdaptation(**{
                name: self.number(ta[name], f"{tpath}.{name}", f.unit, ta, name)
                for name, f in SCHEMA["threshold_adaptation"].items() if name in ta
            })
        return params

    def source(self, m, path, parent, index):
        self.fields(m, path, "source", parent, index)
        label = self.string(m["label"], f"{path}.label", m, "label")
        size = self.integer(m["size"], f"{path}.size", m, "size")
        has_p, has_t = "poisson" in m, "spike_times" in m
        if has_p == has_t:
            self.fail(path, "a source needs exactly one of 'poisson' and 'spike_times'"
                      + (" (both given)" if has_p else ""),
                      "give poisson: {rate: Hz, ...} or spike_times: [[ms, ...], ...]", parent, index)
        if has_t:
            return SpikeSource(label, size, self.spike_times(m["spike_times"], f"{path}.spike_times", size, m))
        p = m["poisson"] if m["poisson"] is not None else {}
        ppath = f"{path}.poisson"
        self.fields(p, ppath, "poisson", m, "poisson")
        src = PoissonSource(label, size)
        if "rate" in p:
            src.rate = self.per_neuron(p["rate"], f"{ppath}.rate", "Hz", p, "rate")
        if "seed" in p:
            src.seed = self.integer(p["seed"], f"{ppath}.seed", p, "seed")
        if "start" in p:
            src.start = self.number(p["start"], f"{ppath}.start", "ms", p, "start")
        if p.get("stop") is not None:
            src.stop = self.number(p["stop"], f"{ppath}.stop", "ms", p, "stop")
        return src

    def spike_times(self, value, path, size, parent) -> list[list[float]]:
        """Inline: one list of times per source neuron. Side file: an (n, 2) array of rows
        (source neuron index, time ms)."""
        if isinstance(value, dict):
            rows = self.array(value, path, "ms", parent, "spike_times", ndim=2,
                              what="an (n, 2) array of rows (source neuron index, time ms)")
            rows = rows.reshape(-1, 2) if rows.size == 0 else rows
            if rows.shape[1] != 2:
                self.fail(path, f"expected rows (source neuron index, time ms), got shape {rows.shape}",
                          "store an (n, 2) array", parent, "spike_times")
            idx = rows[:, 0]
            if not (np.isfinite(idx).all() and (idx == np.round(idx)).all() and (idx >= 0).all()
                    and (idx < size).all()):
                self.fail(path, f"source neuron indices must be whole numbers in 0 .. {size - 1}",
                          "fix column 0 of the spike array", parent, "spike_times")
            out: list[list[float]] = [[] for _ in range(size)]
            for i, t in zip(idx.astype(np.int64).tolist(), rows[:, 1].tolist()):
                out[i].append(t)
            return out
        if not isinstance(value, list):
            self.fail(path, f"expected one list of spike times (ms) per source neuron, got {_type_name(value)}",
                      "write e.g. [[10.0, 50.0], [20.0]]", parent, "spike_times")
        out = []
        for i, times in enumerate(value):
            if not isinstance(times, list):
                self.fail(f"{path}[{i}]", f"expected a list of spike times (ms), got {_type_name(times)}",
                          "write the times of each source neuron as a list, [] for none", value, i)
            out.append([self.number(t, f"{path}[{i}][{j}]", "ms", times, j) for j, t in enumerate(times)])
        return out

    def connector(self, value, path, parent) -> tuple[str, dict]:
        if isinstance(value, str):
            return self.enum(value, path, CONNECTOR_KINDS, parent, "connector"), {}
        if isinstance(value, dict) and len(value) == 1:
            kind = self.enum(next(iter(value)), path, CONNECTOR_KINDS, value, next(iter(value)))
            opts = value[kind] if value[kind] is not None else {}
            opath = f"{path}.{kind}"
            self.fields(opts, opath, "connector_options", value, kind)
            for k in opts:
                if k not in _CONNECTOR_OPTIONS[kind]:
                    allowed = ", ".join(_CONNECTOR_OPTIONS[kind]) or "none"
                    self.fail(f"{opath}.{k}", f"{kind} has no option {k!r}", f"options of {kind}: {allowed}", opts, k)
            if kind == "fixed_probability" and "p" not in opts:
                self.fail(opath, "fixed_probability needs the probability p",
                          "write {fixed_probability: {p: 0.1, seed: 1}}", value, kind)
            return kind, opts
        self.fail(path, f"expected a connector, got {_type_name(value)}",
                  "write all_to_all, one_to_one or {fixed_probability: {p: 0.1, seed: 1}}", parent, "connector")

    def projection(self, m, path, parent, index, sizes: dict[str, int]) -> Projection:
        self.fields(m, path, "projection", parent, index)
        proj = Projection(pre=self.string(m["pre"], f"{path}.pre", m, "pre"),
                          post=self.string(m["post"], f"{path}.post", m, "post"))
        if m.get("label") is not None:
            proj.label = self.string(m["label"], f"{path}.label", m, "label")
        if "receptor" in m:
            proj.receptor = self.enum(m["receptor"], f"{path}.receptor", ("excitatory", "inhibitory"), m, "receptor")
        if m.get("plasticity") is not None:
            ppath = f"{path}.plasticity"
            self.fields(m["plasticity"], ppath, "plasticity", m, "plasticity")
            s = m["plasticity"].get("stdp") or {}
            self.fields(s, f"{ppath}.stdp", "stdp", m["plasticity"], "stdp")
            proj.plasticity = STDP(**{name: self.number(s[name], f"{ppath}.stdp.{name}", f.unit, s, name)
                                      for name, f in SCHEMA["stdp"].items() if name in s})
        forms = [k for k in ("connector", "weights", "connections") if k in m]
        if len(forms) != 1:
            self.fail(path, "gives no synapses" if not forms else f"gives {' and '.join(forms)}",
                      "give exactly one of: connector (+ weight, delay), weights (+ delays), connections",
                      parent, index)
        form = forms[0]
        misplaced = {"connector": ("delays",), "weights": ("weight", "delay"),
                     "connections": ("weight", "delay", "delays")}[form]
        for k in misplaced:
            if k in m:
                hint = {"delays": "with a connector write 'delay' (one value)",
                        "weight": "'weight' belongs to a connector; a weight matrix is 'weights'",
                        "delay": "with a weight matrix write 'delays' (scalar or matrix)"}[k]
                if form == "connections":
                    hint = "a connection list gives each synapse's weight and delay in columns 3 and 4"
                self.fail(f"{path}.{k}", f"{k!r} does not go with {form!r}", hint, m, k)
        if form == "connector":
            kind, opts = self.connector(m["connector"], f"{path}.connector", m)
            if "weight" not in m:
                self.fail(path, "a connector needs 'weight' (nA)", "add e.g. weight: 0.5", m, "connector")
            conn = Connector(
                kind=kind,
                weight=self.number(m["weight"], f"{path}.weight", "nA", m, "weight"),
                delay=self.number(m["delay"], f"{path}.delay", "ms", m, "delay") if "delay" in m else 1.0,
                p=self.number(opts["p"], f"{path}.connector.{kind}.p", "", opts, "p") if "p" in opts else None,
                seed=self.integer(opts["seed"], f"{path}.connector.{kind}.seed", opts, "seed") if "seed" in opts else 0,
                allow_self_connections=self.boolean(opts["allow_self_connections"],
                                                    f"{path}.connector.{kind}.allow_self_connections", opts,
                                                    "allow_self_connections")
                if "allow_self_connections" in opts else True,
            )
            proj.connector = conn
            if proj.pre in sizes and proj.post in sizes:
                try:
                    fields = conn.expand(sizes[proj.pre], sizes[proj.post], plastic=proj.plasticity is not None,
                                         same_population=proj.pre == proj.post)
                except NetworkError as e:
                    self.fail(f"{path}.connector", str(e).split("; ")[0], str(e).split("; ")[-1], m, "connector")
                proj.weights, proj.delays, proj.connections = fields["weights"], fields["delays"], fields["connections"]
            else:  # validate reports the unknown label; keep a placeholder the checker recognises
                proj.weights = np.zeros((0, 0))
        elif form == "weights":
            proj.weights = self.array(m["weights"], f"{path}.weights", "nA", m, "weights", ndim=2,
                                      what="a matrix (list of rows) of weights in nA")
            if "delays" in m:
                d = m["delays"]
                proj.delays = (self.array(d, f"{path}.delays", "ms", m, "delays", ndim=2,
                                          what="a number (ms) or a matrix shaped like the weights")
                               if isinstance(d, (list, dict)) else self.number(d, f"{path}.delays", "ms", m, "delays"))
        else:
            rows = self.array(m["connections"], f"{path}.connections", "", m, "connections", ndim=2,
                              what="a list of rows [pre index, post index, weight nA, delay ms]")
            if rows.size == 0:
                rows = rows.reshape(0, 4)
            if rows.shape[1] != 4:
                self.fail(f"{path}.connections", f"rows have {rows.shape[1]} values, expected 4",
                          "write each synapse as [pre index, post index, weight nA, delay ms]", m, "connections")
            proj.connections = rows
        return proj


def _line_of(node, key=None) -> int | None:
    if key is not None:
        if isinstance(node, _Map) and key in node.key_lines:
            return node.key_lines[key]
        if isinstance(node, _Seq) and isinstance(key, int) and 0 <= key < len(node.item_lines):
            return node.item_lines[key]
    return getattr(node, "line", None)


_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _line_for_path(doc, path: str) -> int | None:
    """The line of the deepest part of ``path`` (``projections[2].weights[3][1]``) found in the document."""
    node, line = doc, None
    for name, index in _PATH_TOKEN.findall(path):
        key = name if name else int(index)
        if isinstance(node, dict) and key in node:
            line = _line_of(node, key) or line
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            line = _line_of(node, key) or line
            node = node[key]
        else:
            break
    return line


def load_network(path) -> Network:
    """Read a network file (.yaml/.yml/.json) and validate it; errors name the file, line and field."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + JSON_SUFFIXES:
        raise NetworkFileError(path, "", f"unknown network file type {suffix!r}",
                               "use a .yaml, .yml or .json file")
    doc = _parse_text(path)
    reader = _Reader(path)
    try:
        network = reader.network(doc)
    finally:
        reader.close()
    try:
        return validate(network, source=str(path))
    except NetworkValidationError as e:
        for issue in e.issues:
            issue.line = _line_for_path(doc, issue.path)
        raise NetworkValidationError(e.issues, source=str(path), name=network.name) from None


# ---- writing -----------------------------------------------------------------------------------------
class _Writer:
    """Builds the document; arrays above INLINE_LIMIT elements go to the side file."""

    def __init__(self, path: Path, side_file: Path, json_mode: bool):
        self.path, self.side_file, self.json_mode = path, side_file, json_mode
        self.side: dict[str, np.ndarray] = {}

    def num(self, x) -> float | str:
        x = float(x)
        if self.json_mode and not math.isfinite(x):
            return "inf" if x > 0 else "-inf" if x < 0 else "nan"  # strict JSON has no Infinity
        return x

    def array(self, arr, key: str):
        arr = np.asarray(arr, dtype=np.float64)
        if arr.size > INLINE_LIMIT:
            name = key
            n = 2
            while name in self.side:
                name, n = f"{key}.{n}", n + 1
            self.side[name] = arr
            return {"file": os.path.relpath(self.side_file, self.path.parent).replace(os.sep, "/"), "key": name}
        return [self.num(x) for x in arr] if arr.ndim == 1 else [self.array(row, key) for row in arr]

    def value(self, v, key: str):
        """A scalar stays a scalar, an array stays a list (even if all values are equal)."""
        return self.num(v) if np.ndim(v) == 0 else self.array(v, key)

    def network(self, net: Network) -> dict:
        doc: dict[str, Any] = {"spikeforge": FORMAT_VERSION, "name": net.name, "dt": self.num(net.dt)}
        if net.populations:
            doc["populations"] = [self.population(p) for p in net.populations]
        if net.sources:
            doc["sources"] = [self.source(s) for s in net.sources]
        sizes = {n.label: n.size for n in [*net.populations, *net.sources]}
        if net.projections:
            doc["projections"] = [self.projection(p, sizes) for p in net.projections]
        return doc

    def population(self, pop: Population) -> dict:
        p = pop.params
        neuron: dict[str, Any] = {name: self.value(getattr(p, name), f"{pop.label}.{name}") for name in LIF_DEFAULTS}
        neuron["reset"] = p.reset
        if p.threshold_adaptation is not None:
            ta = p.threshold_adaptation
            neuron["threshold_adaptation"] = {"increment": self.num(ta.increment), "tau": self.num(ta.tau)}
        out: dict[str, Any] = {"label": pop.label, "size": int(pop.size), "neuron": neuron}
        if pop.v_init is not None:
            out["v_init"] = self.value(pop.v_init, f"{pop.label}.v_init")
        if pop.current_input:
            out["current_input"] = True
        return out

    def source(self, src) -> dict:
        out: dict[str, Any] = {"label": src.label, "size": int(src.size)}
        if isinstance(src, SpikeSource):
            n_spikes = sum(len(t) for t in src.spike_times)
            if 2 * n_spikes > INLINE_LIMIT:
                rows = [(i, float(t)) for i, ts in enumerate(src.spike_times) for t in ts]
                out["spike_times"] = self.array(np.array(rows, dtype=np.float64).reshape(-1, 2),
                                                f"{src.label}.spike_times")
            else:
                out["spike_times"] = [[self.num(t) for t in ts] for ts in src.spike_times]
            return out
        poisson: dict[str, Any] = {"rate": self.value(src.rate, f"{src.label}.rate"), "seed": int(src.seed),
                                   "start": self.num(src.start)}
        if src.stop is not None:
            poisson["stop"] = self.num(src.stop)
        out["poisson"] = poisson
        return out

    def projection(self, proj: Projection, sizes: dict[str, int]) -> dict:
        out: dict[str, Any] = {}
        if proj.label is not None:
            out["label"] = proj.label
        out.update(pre=proj.pre, post=proj.post, receptor=proj.receptor)
        key = proj.name
        c = proj.connector
        if c is not None and _connector_reproduces(proj, sizes):
            opts: dict[str, Any] = {}
            if c.kind == "fixed_probability":
                opts.update(p=self.num(c.p), seed=int(c.seed))
            if not c.allow_self_connections:
                opts["allow_self_connections"] = False
            out["connector"] = {c.kind: opts} if opts else c.kind
            out.update(weight=self.num(c.weight), delay=self.num(c.delay))
        elif proj.connections is not None:
            rows = np.asarray(proj.connections, dtype=np.float64).reshape(-1, 4)
            out["connections"] = self.array(rows, f"{key}.connections")
            if isinstance(out["connections"], list):  # inline: indices read better as integers
                out["connections"] = [[_index(r[0]), _index(r[1]), r[2], r[3]] for r in out["connections"]]
        else:
            out["weights"] = self.array(proj.weights, f"{key}.weights")
            out["delays"] = self.value(proj.delays, f"{key}.delays")
        if proj.plasticity is not None:
            s = proj.plasticity
            out["plasticity"] = {"stdp": {name: self.num(getattr(s, name)) for name in SCHEMA["stdp"]}}
        return out

    def write_side(self):
        if not self.side:
            return
        self.side_file.parent.mkdir(parents=True, exist_ok=True)
        if self.side_file.suffix.lower() in HDF5_SUFFIXES:
            import h5py

            with h5py.File(self.side_file, "w") as f:
                for name, arr in self.side.items():
                    f.create_dataset(name, data=arr)
        else:
            np.savez_compressed(self.side_file, **self.side)


def _index(x):
    """A whole-number index as an int (exact round trip: it is read back as the same float64)."""
    return int(x) if isinstance(x, float) and x.is_integer() and abs(x) < 2**53 else x


def _same(a, b) -> bool:
    if (a is None) != (b is None):
        return False
    if a is None:
        return True
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.array_equal(a, b)


def _connector_reproduces(proj: Projection, sizes: dict[str, int]) -> bool:
    """Whether writing only the connector gives back exactly the projection's arrays."""
    if proj.pre not in sizes or proj.post not in sizes:
        return False
    try:
        f = proj.connector.expand(sizes[proj.pre], sizes[proj.post], plastic=proj.plasticity is not None,
                                  same_population=proj.pre == proj.post)
    except NetworkError:
        return False
    if not (_same(f["weights"], proj.weights) and _same(f["connections"], proj.connections)):
        return False
    # delays are part of the arrays only with a weight matrix
    return proj.weights is None or (np.ndim(proj.delays) == 0 and float(proj.delays) == f["delays"])


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper, data):
    """Lists of scalars in flow style ([1.0, 2.0]); lists of mappings/lists in block style."""
    flow = all(not isinstance(x, (list, dict)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper, data):
    flow = len(data) <= 4 and all(not isinstance(v, (list, dict)) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


def save_network(network: Network, path, *, side_file=None) -> Path:
    """Write ``network`` to ``path`` (.yaml/.yml/.json). Arrays with more than INLINE_LIMIT elements
    go to ``side_file`` (default ``<stem>.npz`` next to ``path``; an .h5 name writes HDF5), which is
    only written when needed. Returns ``path``. ``load_network(path)`` gives back an equal network."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + JSON_SUFFIXES:
        raise NetworkFileError(path, "", f"unknown network file type {suffix!r}", "use a .yaml, .yml or .json file")
    side = Path(side_file) if side_file is not None else path.with_suffix(".npz")
    if side.suffix.lower() not in NPZ_SUFFIXES + HDF5_SUFFIXES:
        raise NetworkFileError(side, "", f"unknown side file type {side.suffix!r}", "use .npz, .h5 or .hdf5")
    if not side.is_absolute() and side_file is not None and side.parent == Path("."):
        side = path.parent / side  # a bare name sits next to the network file
    writer = _Writer(path, side, json_mode=suffix in JSON_SUFFIXES)
    doc = writer.network(network)
    writer.write_side()
    if suffix in JSON_SUFFIXES:
        text = json.dumps(doc, indent=1) + "\n"
    else:
        header = (f"# spikeforge network file, format version {FORMAT_VERSION} (docs/network-format.md)\n"
                  "# units: ms, mV, nA, nF, Hz\n")
        text = header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path
