"""The output map: quantile matching per mouth channel, kept in the checkpoint, applied by the engine."""

import numpy as np
import pytest
import torch

from a2f_core.arkit import INDEX, MOUTH
from a2f_core.calibration import OutputMap, channel_report, fit_output_map, quantile_knots
from a2f_core.engine import infer, infer_naive
from a2f_core.errors import CheckpointError
from a2f_core.model import DualStreamModel, ModelConfig, load_checkpoint, save_checkpoint

from .conftest import DATA


def test_quantile_knots_carry_one_distribution_onto_another_above_the_sealed_level():
    rng = np.random.default_rng(0)
    src = rng.uniform(0.0, 0.4, 20000)            # squeezed
    tgt = rng.uniform(0.0, 0.6, 20000)            # the range it should have
    x, y = quantile_knots(src, tgt)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0)
    assert (x[0], y[0], x[-1], y[-1]) == (0.0, 0.0, 1.0, 1.0)
    # up to 0.10 (sealed lips) nothing moves; above, (0.1, 0.4) is carried onto (0.1, 0.6)
    assert np.interp([0.02, 0.05, 0.1, 0.25, 0.4], x, y) == pytest.approx([0.02, 0.05, 0.1, 0.35, 0.6], abs=0.015)
    # a target that would need a slope over 2 gets 2
    x2, y2 = quantile_knots(src, rng.uniform(0.0, 1.0, 20000))
    assert np.all(np.diff(y2) <= 2.0 * np.diff(x2) + 1e-9)
    assert np.interp(0.4, x2, y2) == pytest.approx(0.7, abs=0.02)
    # a source that sits on one value for half its frames still gives increasing knots
    src3 = np.where(rng.random(20000) < 0.5, 0.2, rng.uniform(0.1, 0.3, 20000))
    x3, _ = quantile_knots(src3, tgt)
    assert np.all(np.diff(x3) > 0)
    # too few values above the sealed level: the identity
    x4, y4 = quantile_knots(rng.uniform(0, 0.1, 5000), tgt)
    assert np.array_equal(x4, y4)


def test_fit_output_map_changes_only_the_mouth_channels_the_model_produces_and_keeps_order():
    rng = np.random.default_rng(1)
    model_vals = rng.uniform(0, 0.3, (5000, 52))
    teacher = rng.uniform(0, 0.45, (5000, 52))
    close = INDEX["mouthClose"]
    model_vals[:, close] = 1e-4                    # a dead output: not stretched
    om = fit_output_map(model_vals, teacher)
    assert set(om.channels) == set(MOUTH) - {"mouthClose"}
    out = om(model_vals)
    blink = INDEX["eyeBlinkLeft"]
    assert np.array_equal(out[:, blink], model_vals[:, blink])
    assert np.array_equal(out[:, close], model_vals[:, close])
    jaw = INDEX["jawOpen"]
    order = np.argsort(model_vals[:, jaw])
    assert np.all(np.diff(out[order, jaw]) >= 0)
    # a third of the frames stay under 0.1 (mean 0.05), the rest spread over (0.1, 0.45) (mean 0.275)
    assert out[:, jaw].mean() == pytest.approx(0.05 / 3 + 0.275 * 2 / 3, abs=0.01)
    with pytest.raises(ValueError):
        OutputMap(np.zeros((52, 3)), np.zeros((52, 3)))


def test_output_map_travels_in_the_checkpoint_and_the_engine_applies_it(tmp_path, speech):
    torch.manual_seed(0)
    model = DualStreamModel(ModelConfig()).eval()
    audio = speech[:16000 * 3]
    raw = infer(audio, model, rate=16000).values
    x = np.tile(np.linspace(0, 1, 5), (52, 1))
    y = x.copy()
    y[INDEX["jawOpen"]] = np.sqrt(x[INDEX["jawOpen"]])      # any monotone map
    model.output_map = OutputMap(x, y)
    path = tmp_path / "m.pt"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert loaded.output_map.channels == ["jawOpen"]
    mapped = infer(audio, loaded, rate=16000).values
    jaw = INDEX["jawOpen"]
    assert np.allclose(mapped[:, jaw], np.interp(raw[:, jaw], x[jaw], y[jaw]), atol=1e-5)
    others = [i for i in range(52) if i != jaw]
    assert np.array_equal(mapped[:, others], raw[:, others])
    naive = infer_naive(audio, loaded)
    assert np.allclose(naive, mapped, atol=2e-4)
    # a damaged map is a clear error, not a crash in the engine
    blob = torch.load(path, weights_only=True)
    blob["output_map"]["y"] = blob["output_map"]["y"].flip(1)
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="output map"):
        load_checkpoint(tmp_path / "bad.pt")


def test_training_from_a_calibrated_model_drops_its_map(tmp_path, speech):
    from a2f_core.train import SequentialTrainer, TrainConfig

    from .test_train_eval import tiny_pairs

    model = DualStreamModel(ModelConfig())
    model.output_map = OutputMap.identity(3)
    tr = SequentialTrainer(tiny_pairs(tmp_path, speech), tmp_path / "run",
                           TrainConfig(steps=1, batch=1, stretch=32, warmup=1), ModelConfig(), init=model,
                           progress=False)
    assert tr.model.output_map is None
    tr.train()
    assert load_checkpoint(tmp_path / "run" / "last.pt").output_map is None


def _speech_more_en(tmp_path, stems):
    """A data folder holding these clips of shared/data/speech_more/en (wav + txt); skips without them or
    without the shipped model."""
    import shutil

    from a2f_core.model import default_checkpoint_path

    src = DATA / "speech_more" / "en"
    if not src.is_dir() or default_checkpoint_path() is None:
        pytest.skip("needs shared/data/speech_more/en and the shipped model")
    en = tmp_path / "data" / "speech_more" / "en"
    en.mkdir(parents=True)
    for stem in stems:
        for ext in (".wav", ".txt"):
            shutil.copy(src / (stem + ext), en / (stem + ext))
    return tmp_path / "data"


def test_calibrate_command_fits_on_the_training_speakers_only(tmp_path):
    """``calibrate`` reads the training speakers' clips of speech_more/en (never a dev speaker's), maps
    the mouth channels the shipped model produces and records where the map came from."""
    import subprocess
    import sys

    data = _speech_more_en(tmp_path, ["cathy_arctic_a0001", "cathy_arctic_a0019", "cathy_arctic_a0037",
                                      "cathy_arctic_a0055", "cathy_arctic_a0091", "mfa_putty"])
    out = tmp_path / "cal.pt"
    r = subprocess.run([sys.executable, "-m", "a2f_core", "calibrate", "--data", str(data),
                        "--out", str(out), "--cache", str(tmp_path / "align"), "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "from 5 clips" in r.stdout
    m = load_checkpoint(out)
    assert m.checkpoint_meta["calibration"]["clips"] == 5
    assert "jawOpen" in m.output_map.channels and "eyeBlinkLeft" not in m.output_map.channels
    jaw = INDEX["jawOpen"]
    x = np.linspace(0, 1, 101)
    mapped = np.interp(x, m.output_map.x[jaw], m.output_map.y[jaw])
    assert np.array_equal(mapped[x <= 0.1], x[x <= 0.1])            # sealed and resting lips stay as they were
    assert np.all(np.diff(mapped) <= 2.0 * np.diff(x) + 1e-6)       # slope at most 2 (knots kept in float32)


def test_channel_report_flags_outputs_the_model_no_longer_produces():
    rng = np.random.default_rng(0)
    teach = np.zeros((3000, 52))
    jaw, close, blink = INDEX["jawOpen"], INDEX["mouthClose"], INDEX["eyeBlinkLeft"]
    teach[:, jaw] = rng.uniform(0.0, 0.6, 3000)
    teach[::10, close] = 0.3                      # up on one frame in ten
    model = np.zeros_like(teach)
    model[:, jaw] = 0.5 * teach[:, jaw] + 0.02    # squeezed but following
    model[:, close] = 0.001 * rng.random(3000)    # stuck near 0
    model[:, blink] = 0.2                         # a constant output, the teacher's is 0
    rows = {r["name"]: r for r in channel_report(model, teach)}
    assert len(rows) == 52
    assert rows["jawOpen"]["r"] == pytest.approx(1.0) and not rows["jawOpen"]["dead"]
    assert rows["jawOpen"]["teacher_p99"] == pytest.approx(np.percentile(teach[:, jaw], 99))
    assert rows["mouthClose"]["dead"] and rows["mouthClose"]["teacher_p99"] == pytest.approx(0.3)
    assert rows["eyeBlinkLeft"]["r"] is None and not rows["eyeBlinkLeft"]["dead"]   # nothing to follow
    assert [n for n, r in rows.items() if r["dead"]] == ["mouthClose"]


def test_channels_command_reports_the_shipped_model_on_the_training_speakers(tmp_path):
    import json
    import subprocess
    import sys

    data = _speech_more_en(tmp_path, ["cathy_arctic_a0001", "cathy_arctic_a0019", "mfa_putty"])
    out = tmp_path / "channels.json"
    r = subprocess.run([sys.executable, "-m", "a2f_core", "channels", "--data", str(data),
                        "--cache", str(tmp_path / "align"), "--json", str(out), "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "2 clips" in r.stdout and "jawOpen" in r.stdout and "eyeBlinkLeft" not in r.stdout
    report = json.loads(out.read_text())
    assert sorted(report["clips"]) == ["cathy_arctic_a0001", "cathy_arctic_a0019"]   # mfa_putty: a dev speaker
    jaw = next(c for c in report["channels"] if c["name"] == "jawOpen")
    assert jaw["teacher_p99"] > 0.2 and jaw["r"] > 0.2 and not jaw["dead"]
    assert r.stdout.strip().splitlines()[-1].startswith("dead: ")
