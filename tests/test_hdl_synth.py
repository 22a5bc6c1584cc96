"""Synthesis for the iCE40 UP5K with YoWASP Yosys (slow: minutes; `make test-long`)."""

from __future__ import annotations

import pytest

from spikeforge.core.config import CoreConfig


@pytest.mark.slow
def test_small_core_maps_weights_to_spram_and_products_to_dsps():
    """A core whose weight memory is one SPRAM deep: yosys maps it to SB_SPRAM256KA, the neuron
    products to SB_MAC16 (5 without adaptation and STDP), the other memories to block RAM."""
    from spikeforge.hdl.synth_check import synthesize

    config = CoreConfig(n_neurons=64, n_inputs=960, lanes=4, weight_bits=8, n_profiles=2)
    res = synthesize(config)
    assert res["SPRAM"] == 2       # 1024 rows x 16 words of 32 bits = 16K x 32
    assert res["DSP"] == 5
    assert 0 < res["EBR"] <= 30
