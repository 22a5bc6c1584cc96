"""The blimp SNN: genome -> CoreImage equals the compiler's, batch evaluation equals single, the cost."""

import warnings

import numpy as np
import pytest

from spikeforge.compiler import compile
from spikeforge.core import fixedpoint as fx
from spikeforge.core.image import PROFILE_FIELDS
from spikeforge.demos.blimp import fitness, snn
from spikeforge.sim import golden

SMALL_PD = snn.SubnetSpec("pd", pairs=2, hidden=6, groups=2, fan_in=3, input_scale=2.0, wiring_seed=4)
SMALL_I = snn.SubnetSpec("i", pairs=2, hidden=5, groups=2, fan_in=2, input_scale=10.0, decoder_decay_max=0.3,
                         self_connections=True, wiring_seed=5, syn_log_tau=(2.0, 4.5))
#: the structured integrator (the shipped I sub-network's structure), small
SMALL_INT = snn.SubnetSpec("i", pairs=2, hidden=4, groups=2, fan_in=2, input_scale=10.0, decoder_decay_max=0.3,
                           integrator=True, thresh_range=(2.0, 30.0), w_max=0.2, wiring_seed=5)


def random_params(spec, batch, seed):
    z = np.random.default_rng(seed).random((batch, spec.genome_size))
    params = snn.decode_genome(spec, z)
    params.dec_weights = np.random.default_rng(seed + 1).normal(size=(batch, spec.hidden))
    return params


def random_controller(seed, i_spec=SMALL_I):
    return snn.Controller(random_params(SMALL_PD, 1, seed), random_params(i_spec, 1, seed + 10))


@pytest.mark.parametrize("seed, i_spec", [(0, SMALL_I), (1, SMALL_I), (2, SMALL_INT), (3, SMALL_INT)])
def test_direct_image_equals_compiled_network(seed, i_spec):
    c = random_controller(seed, i_spec)
    img = c.image()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny random weights may round to zero: the same in both
        cn = compile(snn.network(c), c.config(), **snn.compile_options())
    assert cn.scaling.v_lsb == snn.V_LSB and cn.scaling.i_lsb == snn.I_LSB and cn.scaling.v_offset == snn.V_OFFSET
    for name in PROFILE_FIELDS:  # per neuron (profile numbering may differ)
        np.testing.assert_array_equal(img.profiles[name][img.neuron_profile],
                                      cn.image.profiles[name][cn.image.neuron_profile], err_msg=name)
    np.testing.assert_array_equal(img.weights, cn.image.weights)
    np.testing.assert_array_equal(img.row_shift, cn.image.row_shift)
    np.testing.assert_array_equal(img.v, cn.image.v)



@pytest.mark.parametrize("spec", [SMALL_I, SMALL_INT])
def test_genome_round_trip(spec):
    z = np.random.default_rng(3).random((4, spec.genome_size))
    params = snn.decode_genome(spec, z)
    np.testing.assert_allclose(snn.encode_genome(params), z, atol=1e-9)
    with pytest.raises(ValueError, match="needs"):
        snn.decode_genome(spec, z[:, :-1])


def test_integrator_holds_the_error_integral_exactly():
    """The structured I sub-network: encoder spike counts are the error integral (sigma-delta), the
    hidden synaptic currents add them up with +-w and never decay, so after the error returns to zero
    the net current ie + ii stays exactly w (N+ - N-) and the hidden neurons keep firing at a constant
    rate: the integral is held, not leaked."""
    z = np.random.default_rng(11).random((1, SMALL_INT.genome_size))
    p = snn.decode_genome(SMALL_INT, z)
    p.values["enc_gain"][:] = [1.0, 0.5]
    p.values["enc_thresh"][:] = 5.0
    p.values["w_in"][:] = 0.15  # every hidden neuron integrates its pair positively
    p.values["hid_bias"][:] = 0.0
    img = snn.subnet_images(p)[0]
    assert (img.profiles["c_edecay"][1:] == fx.COEF_ONE).all() and (img.profiles["c_idecay"][1:] == fx.COEF_ONE).all()
    T, E = 600, SMALL_INT.n_encoders
    e = np.zeros(T)
    e[:150] = 0.3  # integrate a positive error ...
    e[150:200] = -0.3  # ... a smaller negative one ...
    u = snn.encoder_inputs(p, e[None])[0]  # ... then hold
    _, rec = golden.run(img, None, steps=T, currents=u, record=("ie", "ii"))
    n_pos = rec.spikes[:, 0:E:2].sum(axis=0).astype(np.int64)
    n_neg = rec.spikes[:, 1:E:2].sum(axis=0).astype(np.int64)
    assert (n_pos > n_neg).all() and n_neg.sum() > 0, "the test needs spikes of both signs"
    w_int, shift = snn.quantise_weight_matrix(snn.weight_matrix(p))
    k = np.arange(SMALL_INT.hidden) % SMALL_INT.pairs
    step = w_int[0, 2 * k, E + np.arange(SMALL_INT.hidden)] << shift[0, 2 * k]
    net = rec["ie"][-1, E:] + rec["ii"][-1, E:]
    np.testing.assert_array_equal(net, step * (n_pos[k] - n_neg[k]))
    np.testing.assert_array_equal(rec["ie"][250:, E:] + rec["ii"][250:, E:], np.broadcast_to(net, (T - 250, SMALL_INT.hidden)))
    rate = rec.spikes[:, E:]
    assert rate[300:450].sum() > 0
    assert abs(int(rate[300:450].sum()) - int(rate[450:600].sum())) <= SMALL_INT.hidden  # a constant rate


def test_batch_evaluation_equals_single_evaluation():
    rng = np.random.default_rng(7)
    errors = np.cumsum(rng.normal(0, 0.05, size=(2, 120)), axis=1)
    targets = 2.0 * errors
    z = rng.random((5, SMALL_PD.genome_size))
    costs, params = fitness.evaluate(SMALL_PD, z, errors, targets)
    for b in range(5):
        c1, p1 = fitness.evaluate(SMALL_PD, z[b:b + 1], errors, targets)
        assert c1[0] == costs[b]
        np.testing.assert_array_equal(p1.dec_weights[0], params.dec_weights[b])
    # numba kernel and NumPy reference give the same spikes, hence the same costs
    c_ref, _ = fitness.evaluate(SMALL_PD, z, errors, targets, fast=False)
    np.testing.assert_array_equal(c_ref, costs)


def test_cost_is_mae_plus_one_minus_rho():
    t = np.sin(np.linspace(0, 6, 200))
    assert fitness.cost(t, t) == pytest.approx(0.0, abs=1e-12)
    assert fitness.cost(t + 0.5, t) == pytest.approx(0.5)  # offset: MAE only, rho = 1
    assert fitness.cost(-t, t) == pytest.approx(np.mean(np.abs(2 * t)) + 2.0)
    assert fitness.cost(np.zeros(200), t) == pytest.approx(np.mean(np.abs(t)) + 1.0)  # flat output: rho = 0


def test_combined_core_runs_each_subnetwork_as_alone():
    c = random_controller(4)
    T = 80
    e = np.sin(np.linspace(0, 8, T)) * 0.8
    u_pd = snn.encoder_inputs(c.pd, e[None])[0]
    u_i = snn.encoder_inputs(c.i, e[None])[0]
    _, rec = golden.run(c.image(), None, steps=T, currents=np.concatenate([u_pd, u_i], axis=1))
    for name, u in (("pd", u_pd), ("i", u_i)):
        part = getattr(c, name)
        _, alone = golden.run(snn.subnet_images(part)[0], None, steps=T, currents=u)
        np.testing.assert_array_equal(rec.spikes[:, c.hidden_range(name)], alone.spikes[:, part.spec.n_encoders:])


def test_decoder_steps_equal_training_ema():
    p = random_params(SMALL_PD, 1, 9)
    spikes = np.random.default_rng(0).random((1, 50, SMALL_PD.hidden)) < 0.3
    feats = snn.ema(spikes, p["dec_decay"])
    dec = snn.Decoder(p)
    out = []
    for t in range(50):
        out.append(dec.step(spikes[:, t])[0])
        np.testing.assert_array_equal(dec.f[0], feats[0, t])  # the same filter state, bit for bit
    np.testing.assert_allclose(out, feats[0] @ p.dec_weights[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("i_spec", [SMALL_I, SMALL_INT])
def test_controller_file_round_trip(tmp_path, i_spec):
    c = random_controller(5, i_spec)
    c.meta = {"pid_gains": {"kp": 1.0, "ki": 0.1, "kd": 0.5}}
    c.save(tmp_path / "c.json")
    back = snn.Controller.load(tmp_path / "c.json")
    assert back.image() == c.image()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a blimp controller"):
        snn.Controller.load(tmp_path / "bad.json")
