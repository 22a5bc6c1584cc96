"""Profiles: neurons with identical quantised parameters share one parameter set of the core.

The core stores ``n_profiles`` parameter sets and one profile index per neuron. Grouping happens on the
*quantised* integers, so two neurons whose physical parameters differ by less than the resolution
share a profile. Profiles are numbered in order of first appearance (profile 0 = neuron 0's).

Unused neurons (the core is bigger than the network) must never spike: they go to a profile that
cannot reach its threshold without input -- an existing one with bias <= 0 and v_rest < v_thresh (from
v = v_rest, the membrane then only decays towards rest, which is below threshold), or else an extra
"silent" profile (no decay, threshold at the top of the voltage range, no bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.core import fixedpoint as fx
from spikeforge.core.config import CoreConfig
from spikeforge.core.image import PROFILE_FIELDS


@dataclass
class ProfileTable:
    fields: dict[str, np.ndarray]  # field -> (n_used,) int64
    neuron_profile: np.ndarray  # (N_net,) profile of each network neuron
    silent: int | None  # profile for unused neurons (None when no neuron is unused)
    silent_is_extra: bool  # the silent profile was added only for unused neurons

    @property
    def count(self) -> int:
        return len(next(iter(self.fields.values()))) if self.fields else 0


def silent_profile(config: CoreConfig) -> dict[str, int]:
    """A parameter set that never spikes from v = v_rest = 0 without input."""
    p = {name: 0 for name in PROFILE_FIELDS}
    for name in ("c_vdecay", "c_edecay", "c_idecay", "c_adecay"):
        p[name] = fx.COEF_ONE
    p["v_thresh"] = fx.smax(config.v_bits)
    return p


def group_profiles(neuron_fields: dict[str, np.ndarray], n_unused: int, config: CoreConfig) -> ProfileTable:
    """Group network neurons into unique profiles; add a silent profile if unused neurons need one."""
    n_net = len(neuron_fields[PROFILE_FIELDS[0]]) if neuron_fields else 0
    if n_net:
        table = np.stack([np.asarray(neuron_fields[f], dtype=np.int64) for f in PROFILE_FIELDS], axis=1)
        unique, first, inverse = np.unique(table, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first)  # profiles in order of first appearance
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        rows = unique[order]
        neuron_profile = rank[inverse.reshape(-1)]
    else:
        rows = np.zeros((0, len(PROFILE_FIELDS)), dtype=np.int64)
        neuron_profile = np.zeros(0, dtype=np.int64)
    fields = {f: rows[:, k].copy() for k, f in enumerate(PROFILE_FIELDS)}
    silent, extra = None, False
    if n_unused:
        quiet = (fields["bias"] <= 0) & (fields["v_rest"] < fields["v_thresh"])
        if quiet.any():
            silent = int(np.flatnonzero(quiet)[0])
        else:
            sp = silent_profile(config)
            fields = {f: np.append(fields[f], sp[f]).astype(np.int64) for f in PROFILE_FIELDS}
            silent, extra = len(rows), True
    return ProfileTable(fields=fields, neuron_profile=neuron_profile.astype(np.int64), silent=silent,
                        silent_is_extra=extra)
