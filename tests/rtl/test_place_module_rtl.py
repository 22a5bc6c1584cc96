"""The place-recognition module's own core -- the CoreConfig placed and routed on the iCEBreaker
(tests/test_place_bitstream.py: 144 neurons, 288 inputs, one lane, STDP with 16-bit traces, adaptive
thresholds, 3-bit refractory counter) -- learning on the generated Verilog exactly as on the golden
model: the first training presentation of a module (host-normalised initial weights, 200 steps of
Poisson input and 100 silent steps), checked step by step (spikes and every state word,
``run_image(verify=True)``), then the final weights, thresholds and traces.
"""

import numpy as np
import pytest

from spikeforge.demos.place.module import ModuleParameters
from spikeforge.demos.place.synthetic import SyntheticRoute
from spikeforge.demos.place.training import epoch_inputs, initial_image, module_specs, normalise_weights
from spikeforge.sim import golden, rtl_backend

pytestmark = pytest.mark.rtl


def test_a_place_module_learns_on_the_rtl_as_on_the_golden_model(rtl_long_simulator):
    params = ModuleParameters()
    dataset = SyntheticRoute().generate()
    spec = module_specs(dataset, [1], "test")[0]
    start = normalise_weights(initial_image(spec, params), params)
    inputs = epoch_inputs(spec, dataset, params, 0)[:params.train_steps_per_image]
    assert start.config == params.core_config() and start.learning

    final, record, cycles = rtl_backend.run_image(start, inputs, simulator=rtl_long_simulator, verify=True)
    expected, expected_record = golden.run(start, inputs)

    assert record.spikes.sum() > 0, "the module must fire for STDP to potentiate"
    np.testing.assert_array_equal(record.spikes, expected_record.spikes)
    a, n = params.n_inputs, params.n_neurons
    assert not np.array_equal(final.weights[:a, :n], start.weights[:a, :n]), "learning must change the weights"
    assert not np.array_equal(final.adapt, start.adapt), "the thresholds must adapt"
    for field in ("weights", "adapt", "x_trace", "y_trace", "v", "ie", "ii", "refrac_count"):
        np.testing.assert_array_equal(getattr(final, field), getattr(expected, field), err_msg=field)
    assert len(cycles) == len(inputs)
