"""export/simulator.py on a real bundle: it agrees with the float model, batches do not
interact, the one-frame kernels reproduce the vectorised sequence, a saved and reloaded
bundle runs identically, every tensor is exposed in its declared dtype, and bad audio gives
a one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from export import simulator as S
from export.bundle import BundleError, load_bundle, save_bundle
from nanomamba import LABELS, load_audio

from qhelpers import SHARED, small_bundle

pytestmark = pytest.mark.skipif(not (SHARED / "upstream").exists(),
                                reason="shared fixtures absent (published checkpoints)")


@pytest.fixture(scope="module")
def tiny():
    return small_bundle("tiny")


def test_fixture_clips_keep_their_float_labels(tiny):
    bundle, model, _ = tiny
    from export.quantize import float_taps
    sim = S.Simulator(bundle)
    for clip in sorted((SHARED / "audio").glob("*.f32")):
        a = load_audio(clip, dtype="int16")[None]
        out = sim.run(a, keep={"logits", "label"}, frontend_intermediates=False)
        lf = float_taps(model, a, names={"logits"})[0][0]
        assert LABELS[int(out["label"][0, 0])] == LABELS[int(np.argmax(lf))] == clip.stem
        assert LABELS[int(np.argmax(out["logits"][0]))] == clip.stem


def test_label_is_the_argmax_of_the_fine_classifier_grid(tiny):
    """The label ops: classifier_fine shares the classifier's weight and bias arrays, its
    int32 grid is the logit scale x 2^-16, label = first maximum of it; the label's int8 logit
    is a maximum of the int8 logits; the fine grid orders the classes like the exact
    dequantized accumulators."""
    from export.quantize import LABEL_FINE_BITS
    bundle, _, audio = tiny
    fc, fine = bundle.op("classifier"), bundle.op("classifier_fine")
    for k in ("weight", "bias"):
        assert fine["arrays"][k] == fc["arrays"][k]
    assert fine["params"]["requantize"] == "requantize_single_round"
    t = bundle.meta["tensors"]
    assert t["logits_fine"]["dtype"] == "int32" and t["label"]["dtype"] == "int32"
    assert t["logits_fine"]["scale"] == t["logits"]["scale"] * 2.0 ** -LABEL_FINE_BITS
    out = S.Simulator(bundle).run(audio, frontend_intermediates=False)
    lab = out["label"][:, 0]
    assert np.array_equal(lab, np.argmax(out["logits_fine"], axis=1))
    q = out["logits"].astype(np.int64)
    assert np.array_equal(q[np.arange(len(q)), lab], q.max(axis=1))
    W = bundle.arrays[fc["arrays"]["weight"]].astype(np.float64)
    b = bundle.arrays[fc["arrays"]["bias"]].astype(np.float64)
    sw = bundle.arrays[fc["arrays"]["weight_scale"]].astype(np.float64)
    exact = ((out["pooled"].astype(np.float64) - t["pooled"]["zero_point"]) @ W.T + b) * sw
    fine = out["logits_fine"].astype(np.float64) * t["logits_fine"]["scale"] / t["pooled"]["scale"]
    assert np.abs(fine - exact).max() <= 2 * t["logits_fine"]["scale"] / t["pooled"]["scale"]


def test_every_tensor_exposed_with_declared_dtype_and_shape(tiny):
    bundle, _, audio = tiny
    out = S.Simulator(bundle).run(audio[:3])
    T = bundle.meta["model"]["n_frames"]
    for name, t in bundle.meta["tensors"].items():
        assert name in out, name
        v = out[name]
        assert v.dtype == np.dtype(t["dtype"]), name
        want = (3, T, *t["shape"]) if t["per_frame"] else (3, *t["shape"])
        assert v.shape == want, (name, v.shape, want)
    for op in bundle.meta["ops"]:
        for name in op["outputs"] + op["params"].get("internal_tensors", []):
            assert name in out
    assert out["logits"].dtype == np.int8
    assert any(k.startswith("frontend.") for k in out)


def test_batch_members_do_not_interact(tiny):
    bundle, _, audio = tiny
    sim = S.Simulator(bundle)
    keep = {"logits", "blocks.0.h", "final_norm"}
    together = sim.run(audio[:4], keep=keep, frontend_intermediates=False)
    for i in range(4):
        alone = sim.run(audio[i], keep=keep, frontend_intermediates=False)
        for k in keep:
            assert np.array_equal(together[k][i], alone[k][0]), (k, i)
    threaded = sim.run(audio[:4], keep=keep, frontend_intermediates=False, threads=3)
    for k in keep:
        assert threaded[k].dtype == together[k].dtype and np.array_equal(threaded[k], together[k]), k
    with pytest.raises(S.SimulatorError, match="threads"):
        sim.run(audio[:2], threads=0)


def test_one_frame_kernels_reproduce_the_sequence(tiny):
    bundle, _, audio = tiny
    sim = S.Simulator(bundle)
    env = sim.run(audio[:2])
    for op in bundle.meta["ops"]:
        if op["type"] == "sa_ssm":
            p = sim.ssm_params(op)
            pre = op["name"].rsplit(".", 1)[0]
            u, d, bg, c = (env[n] for n in op["inputs"])
            h = np.zeros((2,) + p["k_a"].shape, dtype=np.int64)
            for t in range(u.shape[1]):
                h, y, dA, du = S.sa_ssm_step(h, u[:, t], d[:, t], bg[:, t], c[:, t], p)
                assert np.array_equal(h, env[pre + ".h"][:, t])
                assert np.array_equal(y, env[op["outputs"][0]][:, t])
                assert np.array_equal(dA, env[pre + ".dA"][:, t])
                assert np.array_equal(du, env[pre + ".du"][:, t])
        if op["type"] == "conv1d_depthwise":
            a = sim._arr[op["name"]]
            x = env[op["inputs"][0]]
            zp = bundle.meta["tensors"][op["inputs"][0]]["zero_point"]
            qmin, qmax = sim.qrange(op["outputs"][0])
            K = a["weight"].shape[1]
            state = np.full((2, K - 1, x.shape[2]), zp, dtype=np.int64)
            for t in range(x.shape[1]):
                y, state = S.conv1d_depthwise_step(state, x[:, t], zp, a["weight"], a["bias"],
                                                   a["multiplier"], a["shift"],
                                                   bundle.meta["tensors"][op["outputs"][0]]["zero_point"],
                                                   qmin, qmax)
                assert np.array_equal(y, env[op["outputs"][0]][:, t])


def test_saved_bundle_runs_identically(tiny, tmp_path):
    bundle, _, audio = tiny
    p = save_bundle(bundle, tmp_path / "tiny.npz")
    again = load_bundle(p)
    a = S.Simulator(bundle).run(audio[:2], keep={"logits", "blocks.1.y_ssm"})
    b = S.Simulator(again).run(audio[:2], keep={"logits", "blocks.1.y_ssm"})
    for k in a:
        assert np.array_equal(a[k], b[k])


def test_dequantize_per_channel(tiny):
    bundle, _, audio = tiny
    sim = S.Simulator(bundle)
    t = bundle.meta["tensors"]["blocks.0.h"]
    assert isinstance(t["scale"], list) and len(t["scale"]) == t["shape"][0]
    q = np.ones((1, 1, *t["shape"]), dtype=np.int16)
    d = sim.dequantize("blocks.0.h", q)
    assert np.allclose(d[0, 0, :, 0], t["scale"])


def test_bad_audio_is_a_one_line_error(tiny):
    bundle, _, _ = tiny
    sim = S.Simulator(bundle)
    with pytest.raises(S.SimulatorError, match="int16"):
        sim.run(np.zeros((1, 16000), dtype=np.float32))
    with pytest.raises(S.SimulatorError, match=r"\(B, 16000\)"):
        sim.run(np.zeros((1, 8000), dtype=np.int16))


# ---- argument checks (before any work) ----------------------------------------------------

_Z = np.zeros((1, 16000), dtype=np.int16)


@pytest.mark.parametrize("call, err, match", [
    (lambda s: s.run(_Z, keep=["nope"]), S.SimulatorArgumentError, r"unknown tensor name 'nope'.*names\(\)"),
    (lambda s: s.run(_Z, keep=["logits", "nope", "nah"]), ValueError, r"names 'nope', 'nah'"),
    (lambda s: s.run(_Z, keep="nope"), S.SimulatorError, "unknown tensor name 'nope'"),
    (lambda s: s.run(_Z, keep=[1]), TypeError, "keep: tensor names must be str"),
    (lambda s: s.run(_Z, keep=5), TypeError, "keep: expected a tensor name"),
    (lambda s: s.run(_Z, keep="frontend.mag", frontend_intermediates=False), ValueError,
     "frontend_intermediates=True"),
    (lambda s: s.run(_Z, threads="2"), TypeError, r"threads: expected an int >= 1, got '2'"),
    (lambda s: s.run(_Z, threads=2.5), TypeError, "threads: expected an int"),
    (lambda s: s.run(_Z, threads=True), TypeError, "threads: expected an int"),
    (lambda s: s.run(_Z, threads=0), ValueError, "threads: expected an int >= 1, got 0"),
    (lambda s: s.run_network(np.zeros((1, 5, 5), np.int16), np.zeros((1, 5, 5), np.int8)),
     S.SimulatorError, r"features: expected shape \(B, 101, 40\) with B >= 1, got \(1, 5, 5\)"),
    (lambda s: s.run_network(np.zeros((1, 101, 40), np.int16), np.zeros((101, 40), np.int8)),
     S.SimulatorError, r"snr_mel: expected shape \(B, 101, 40\)"),
    (lambda s: s.run_network(np.zeros((1, 101, 40), np.float32), np.zeros((1, 101, 40), np.int8)),
     S.SimulatorError, "features: expected int16"),
    (lambda s: S.Simulator(None), TypeError, "bundle: expected an export.bundle.Bundle or a bundle file path"),
    (lambda s: S.Simulator("/nonexistent/b.npz"), BundleError, "b.npz: no such file"),
    (lambda s: S.run_bundle(42, _Z), TypeError, "bundle: expected"),
])
def test_bad_arguments_are_one_line_errors(tiny, call, err, match):
    sim = S.Simulator(tiny[0])
    with pytest.raises(err, match=match) as ei:
        call(sim)
    assert "\n" not in str(ei.value)


def test_keep_str_names_paths_and_network_run(tiny, tmp_path):
    """A str keep is one name; names() is exactly what run returns; a bundle path runs like
    the bundle; run_network on the front end's outputs gives run's integers."""
    bundle, _, audio = tiny
    sim = S.Simulator(bundle)
    one = sim.run(audio[:2], keep="logits", frontend_intermediates=False)
    assert list(one) == ["logits"]
    full = sim.run(audio[:1])
    assert sorted(full) == sim.names()
    assert sorted(sim.run(audio[:1], frontend_intermediates=False)) == sim.names(False)
    p = save_bundle(bundle, tmp_path / "b.npz")
    for b in (p, str(p)):
        assert np.array_equal(S.Simulator(b).run(audio[:2], keep="logits")["logits"], one["logits"])
        assert np.array_equal(S.run_bundle(b, audio[:2], keep="label")["label"],
                              sim.run(audio[:2], keep="label")["label"])
    net = sim.run_network(full["features"], full["snr_mel"])
    assert np.array_equal(net["logits"], full["logits"])
