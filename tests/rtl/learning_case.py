"""The learning case the host-through-RTL tests share (link Verilog, link Amaranth, bus bridge): a small
core with every feature that touches the bus (analog input, delays, STDP, adaptive threshold) and a
seed whose network spikes and learns within a few steps, with the golden model's answer."""

import numpy as np

from spikeforge.core.config import CoreConfig
from spikeforge.core.random_image import random_image, random_inputs
from spikeforge.sim.golden import GoldenCore

CONFIG = CoreConfig(n_neurons=4, n_inputs=4, n_current_inputs=1, n_profiles=1, max_delay=2, stdp=True,
                    adaptive_threshold=True)


def learning_case(steps: int = 6):
    """(image, inputs, currents, spikes the golden model gives, its final image) for ``steps`` steps."""
    image = random_image(CONFIG, 2)  # a seed whose network spikes and learns in 6 steps
    image.learning = True
    inputs, currents = random_inputs(CONFIG, steps, 3, rate=0.4)
    golden = GoldenCore(image.copy())
    want = golden.run(inputs, currents=currents).spikes
    return image, inputs, currents, want, golden.images()


STATE_FIELDS = ("weights", "v", "ie", "ii", "refrac_count", "adapt", "x_trace", "y_trace", "ring")


def assert_run_is_golden(case, record, back):
    """The board's run of ``learning_case`` (its spike ``record`` and the image read ``back``) is the
    golden model's, exactly: spikes, every state field, and the step; and the case itself spiked and
    learned (else the comparison proves nothing)."""
    image, inputs, _, want, want_image = case
    assert want.any(), "the test network must spike, else it proves nothing"
    assert (want_image.weights != image.weights).any(), "STDP must have changed weights"
    np.testing.assert_array_equal(record.spikes, want)
    for name in STATE_FIELDS:
        np.testing.assert_array_equal(getattr(back, name), getattr(want_image, name), err_msg=name)
    assert back.step == want_image.step == image.step + len(inputs)
