"""`kws-export evaluate`: noise grid, routes, reports (export/evaluate.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from export import evaluate as E
from export.cli import main
from nanomamba import load_checkpoint
from nanomamba.config import LABELS
from nanomamba.data.noise import noise_batch, rms
from nanomamba.data.speech_commands import SpeechCommands


def _oracle(labels):
    """A route that is right on clean clips and says 'silence' on anything else."""
    table = {}

    def run(audio):
        out = np.zeros((len(audio), 12))
        for i, clip in enumerate(audio):
            out[i, table.get(clip.tobytes(), 10)] = 1.0
        return out
    return table, run


def test_grid_with_fake_routes():
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((12, 16000)) * 1000).astype(np.int16)
    labels = np.arange(12)
    table, oracle = _oracle(labels)
    for clip, lab in zip(audio, labels):
        table[clip.tobytes()] = lab
    const = lambda a: np.tile(np.eye(12)[3], (len(a), 1))          # noqa: E731 always 'down'
    res = E.evaluate_grid({"oracle": oracle, "const": const}, audio, labels,
                          noises=("white", "pink"), snrs=(0, 10), progress=False)
    assert res.conditions() == ["clean", "white@0", "white@10", "pink@0", "pink@10"]
    assert res.accuracy["oracle"]["clean"] == 100.0
    assert res.accuracy["oracle"]["white@0"] == pytest.approx(100 / 12)   # the silence clip
    assert all(v == pytest.approx(100 / 12) for v in res.accuracy["const"].values())
    assert res.agreement["const~oracle"]["clean"] == pytest.approx(100 / 12)
    assert res.max_gap("const", "oracle")[0] == pytest.approx(100 - 100 / 12)
    js = json.loads(res.to_json())
    assert js["accuracy"]["oracle"]["clean"] == 100.0
    assert "| white | oracle | 100.0 |" in E.markdown_table(res)
    png = E.plot_grid(res)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == E.plot_grid(res)
    clean = E.evaluate_grid({"oracle": oracle, "const": const}, audio, labels,
                            noises=(), snrs=(0, 10), progress=False)     # --noise '': clean only
    assert "| - | oracle | 100.0 | - | - |" in E.markdown_table(clean)
    assert E.grid_table(clean).row_count == 3                    # two routes + their agreement


def test_mixtures_are_int16_at_the_snr():
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal((3, 16000)) * 800).astype(np.int16)
    noise = noise_batch("pink", 3, 16000, seed=0)
    mixes = E.mixtures(audio, noise, (-5, 5))
    for snr, mix in mixes.items():
        assert mix.dtype == np.int16
        added = mix.astype(np.float64) - audio
        got = 20 * np.log10(rms(audio.astype(np.float64), axis=1) / rms(added, axis=1))
        assert np.allclose(got, snr, atol=0.05)


def test_float_grid_on_real_clips(upstream_ckpt, speech_commands_test):
    """Clean float accuracy on 48 real clips equals the reference predictions; noise hurts."""
    clips = SpeechCommands(speech_commands_test).load(limit_per_class=4)
    ref = json.loads((speech_commands_test / "float_reference.json").read_text())["predictions"]["tiny"]
    expect = 100 * np.mean([ref[n] == LABELS[lab] for n, lab in zip(clips.names, clips.labels)])
    model = load_checkpoint(upstream_ckpt("tiny"))
    res = E.evaluate_grid({"float": E.float_route(model, threads=1)}, clips.audio, clips.labels,
                          noises=("white",), snrs=(-15, 15), progress=False)
    assert res.accuracy["float"]["clean"] == pytest.approx(expect)
    assert res.accuracy["float"]["white@-15"] < res.accuracy["float"]["white@15"]


def test_cli_evaluate_small(upstream_ckpt, speech_commands_test, tmp_path):
    out = tmp_path / "ev"
    args = ["evaluate", str(upstream_ckpt("tiny")), "--data", str(speech_commands_test),
            "--limit-per-class", "2", "--noise", "white,factory", "--snr", "0,10",
            "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "factory" in res.output and (out / "grid.png").exists()
    grid = json.loads((out / "grid.json").read_text())
    assert grid["n_clips"] == 24 and set(grid["accuracy"]["float"]) == {
        "clean", "white@0", "white@10", "factory@0", "factory@10"}
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "--force" in res.output


@pytest.mark.parametrize("extra,needle,status", [
    (["--route", "fp16"], "'fp16' is not one of 'float', 'int8'", 2),
    (["--noise", "rain"], "unknown noise type 'rain'", 2),
    (["--generated", "1", "--noise", "recorded"], "needs --noise-dir", 2),
    (["--snr", "a,b"], "'--snr': not a comma-separated list", 2),
    ([], "give a dataset folder", 2),
    (["--data", "somewhere", "--generated", "2"], "either --data or --generated, not both", 2),
])
def test_cli_evaluate_errors(upstream_ckpt, extra, needle, status):
    """Usage errors (found by click: choices, callbacks, UsageError) exit 2; input errors 1."""
    res = CliRunner().invoke(main, ["evaluate", str(upstream_ckpt("tiny")), *extra])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == status and len(lines) == 1 and lines[0].startswith("error: ")
    assert needle in lines[0]


def test_cli_evaluate_bad_dataset(upstream_ckpt, tmp_path):
    (tmp_path / "yes").mkdir()
    res = CliRunner().invoke(main, ["evaluate", str(upstream_ckpt("tiny")), "--data", str(tmp_path)])
    assert res.exit_code == 1 and "missing label folder(s)" in res.output


def test_int8_route_is_the_simulator_and_tracks_float(upstream_ckpt, speech_commands_test, tmp_path):
    """The int8 route runs the bit-exact simulator on a bundle (in memory or a file) and
    tracks float; calibration clips are disjoint from the evaluated ones."""
    from export.bundle import save_bundle
    from export.simulator import Simulator
    model = load_checkpoint(upstream_ckpt("tiny"))
    clips = SpeechCommands(speech_commands_test).load(limit_per_class=3)
    calib, ev, ev_labels = clips.audio[0::3], clips.audio[np.arange(len(clips.audio)) % 3 != 0], \
        clips.labels[np.arange(len(clips.audio)) % 3 != 0]
    bundle = E.quantize_for_route(model, calib)
    assert bundle.meta["calibration"]["clips"] == len(calib)
    route = E.int8_route(bundle, batch_size=7)
    logits, labels = route(ev)
    sim = Simulator(bundle)
    out = sim.run(ev, keep={"logits", "label"}, frontend_intermediates=False)
    q = out["logits"]
    assert q.dtype == np.int8 and np.array_equal(logits, sim.dequantize("logits", q))
    assert np.array_equal(labels, out["label"][:, 0])
    # the label's int8 logit is a maximum of the int8 logits (it only breaks ties)
    assert np.array_equal(q[np.arange(len(q)), labels], q.max(axis=1))
    save_bundle(bundle, tmp_path / "b.npz")
    l2, lab2 = E.int8_route(str(tmp_path / "b.npz"))(ev)
    assert np.array_equal(l2, logits) and np.array_equal(lab2, labels)
    routes = {"float": E.float_route(model, threads=1), "int8": route}
    res = E.evaluate_grid(routes, ev, ev_labels, noises=("white",), snrs=(10,), progress=False)
    assert res.agreement["int8~float"]["clean"] >= 90.0


def test_cli_evaluate_int8_with_bundle(upstream_ckpt, speech_commands_test, tmp_path):
    from export.bundle import FORMAT_VERSION, load_bundle, save_bundle
    model = load_checkpoint(upstream_ckpt("tiny"))
    clips = SpeechCommands(speech_commands_test).load(limit_per_class=1)
    b = E.quantize_for_route(model, clips.audio[:6])
    save_bundle(b, tmp_path / "tiny.npz")
    runner = CliRunner()
    base = ["evaluate", str(upstream_ckpt("tiny")), "--data", str(speech_commands_test),
            "--limit-per-class", "1", "--noise", "white", "--snr", "0"]
    r = runner.invoke(main, [*base, "--route", "float", "--route", "int8",
                             "--bundle", str(tmp_path / "tiny.npz"), "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    grid = json.loads((tmp_path / "g" / "grid.json").read_text())
    assert grid["routes"] == ["float", "int8"] and grid["n_clips"] == 12
    # a bundle of a newer format version, of another model, or without the int8 route
    newer = load_bundle(tmp_path / "tiny.npz")
    newer.meta["format_version"] = FORMAT_VERSION + 1
    save_bundle(newer, tmp_path / "newer.npz")
    small = load_checkpoint(upstream_ckpt("small"))
    save_bundle(E.quantize_for_route(small, clips.audio[:2]), tmp_path / "small.npz")
    for extra, needle in [
        (["--route", "int8", "--bundle", str(tmp_path / "newer.npz")], "is newer than this tool"),
        (["--route", "int8", "--bundle", str(tmp_path / "small.npz")], "made from another model"),
        (["--route", "int8", "--bundle", str(tmp_path / "missing.npz")], "missing.npz"),
        (["--bundle", str(tmp_path / "tiny.npz")], "only used by the int8 route"),
    ]:
        r = runner.invoke(main, [*base, *extra, "--out", str(tmp_path / "bad")])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.output
        assert needle in lines[0], r.output
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("where", ["data", "checkpoint"])
def test_cli_evaluate_out_never_replaces_its_inputs(upstream_ckpt, tmp_path, where):
    """--out DIR --force where DIR is (or holds) the dataset or the checkpoint: refused in
    one line before any work, nothing deleted (it used to replace the folder)."""
    import shutil
    data = tmp_path / "ev"
    (data / "yes").mkdir(parents=True)
    (data / "yes" / "a.wav").write_bytes(b"RIFF")          # never read: refused before
    ck = tmp_path / "cdir" / "ck.pt"
    ck.parent.mkdir()
    shutil.copyfile(upstream_ckpt("tiny"), ck)
    out = data if where == "data" else ck.parent
    before = sorted(p.name for p in out.rglob("*"))
    res = CliRunner().invoke(main, ["evaluate", str(ck), "--data", str(data), "--noise", "",
                                    "--snr", "", "--out", str(out), "--force"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert sorted(p.name for p in out.rglob("*")) == before
