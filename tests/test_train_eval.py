"""Training runs and resumes; evaluation measures behave as QUALITY.md defines them."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from a2f_core.arkit import INDEX
from a2f_core.curves import BlendshapeCurves
from a2f_core.eval import pearson, phone_measures, rms_baseline
from a2f_core.model import DualStreamModel, ModelConfig, load_checkpoint
from a2f_core.train import SequentialTrainer, TrainConfig, load_pair
from a2f_core.train.facegood import to_arkit


def _bare(cfg: TrainConfig, l1_channels: torch.Tensor | None = None) -> SimpleNamespace:
    """What :meth:`SequentialTrainer.loss` reads of a trainer: its config and the channels L1 weighs (all)."""
    return SimpleNamespace(cfg=cfg, l1_channels=torch.ones(52) if l1_channels is None else l1_channels)


def tiny_pairs(tmp_path: Path, speech: np.ndarray, n: int = 2):
    items = []
    for i in range(n):
        wav = tmp_path / f"a{i}.wav"
        x = speech[i * 8000: i * 8000 + 48000]
        sf.write(wav, x, 16000)
        T = int(np.ceil(len(x) / 16000 * 30))
        vals = np.zeros((T, 52), np.float32)
        env = np.abs(x[: T * 533]).reshape(T, -1).mean(1) if T * 533 <= len(x) else np.zeros(T)
        vals[:, INDEX["jawOpen"]] = np.clip(env / (env.max() + 1e-9), 0, 1)
        curves = BlendshapeCurves(vals)
        p = curves.save(tmp_path / f"a{i}.csv")
        items.append(load_pair(wav, p))
    return items


def test_training_reduces_loss_saves_and_resumes(tmp_path, speech):
    items = tiny_pairs(tmp_path, speech)
    cfg = TrainConfig(steps=6, batch=1, stretch=32, warmup=2, checkpoint_every=3, log_every=1, lr=3e-3)
    tr = SequentialTrainer(items, tmp_path / "run", cfg, ModelConfig(), cache_dir=tmp_path / "cache",
                           progress=False)
    tr.train()
    assert (tmp_path / "run" / "last.pt").exists()
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert len(log) == 7
    m = load_checkpoint(tmp_path / "run" / "last.pt")
    assert m.checkpoint_meta["step"] == 6
    # feature statistics come from the training data and are stored in the checkpoint
    assert not torch.allclose(m.mel_mean, torch.zeros(80))
    # resume continues from step 6 to 8
    tr2 = SequentialTrainer(items, tmp_path / "run", TrainConfig(**{**cfg.__dict__, "steps": 8}), ModelConfig(),
                            cache_dir=tmp_path / "cache", progress=False)
    tr2.resume(tmp_path / "run" / "last.pt")
    assert tr2.step == 6
    tr2.train()
    assert load_checkpoint(tmp_path / "run" / "last.pt").checkpoint_meta["step"] == 8
    # the feature cache was used
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_frame_weights_leave_frames_unsupervised(tmp_path, speech):
    """A TrainItem's frame_weight zeroes the loss weights of its frames in every channel."""
    item = tiny_pairs(tmp_path, speech, n=1)[0]
    T = len(item.target)
    item.frame_weight = np.ones(T, np.float32)
    item.frame_weight[10:25] = 0.0
    cfg = TrainConfig(steps=1, batch=3, stretch=T, warmup=1)   # a stretch of the whole file: it starts at 0
    tr = SequentialTrainer([item], tmp_path / "run", cfg, ModelConfig(), progress=False)
    w = tr.sample_batch()[3].numpy()
    assert np.array_equal(w, np.broadcast_to(item.frame_weight[None, :, None], w.shape))


def test_pseudo_labels_can_leave_bilabials_to_the_synthetic_data():
    from a2f_core.train.pseudo import bilabial_frames_off

    phones = [("SIL", 0.0, 0.5), ("B", 0.5, 0.6), ("AA1", 0.6, 0.9), ("ah0", 0.9, 1.0), ("m", 1.0, 1.1),
              ("SIL", 1.1, 1.4)]
    w = bilabial_frames_off(phones, 42, pad=2)
    off = np.flatnonzero(w == 0)
    # B covers frames 15-17, m 30-32 (+-2 frames each); the open vowel between them stays supervised
    assert set(range(13, 20)) <= set(off) and set(range(28, 35)) <= set(off)
    assert w[21:27].all() and w[:12].all() and w[36:].all()


def test_pseudo_labels_can_teach_only_the_open_vowels():
    from a2f_core.train.pseudo import open_vowel_frames_only

    phones = [("SIL", 0.0, 0.5), ("B", 0.5, 0.6), ("AA1", 0.6, 0.9), ("ah0", 0.9, 1.0), ("m", 1.0, 1.1),
              ("IY1", 1.1, 1.3), ("SIL", 1.3, 1.4)]
    w = open_vowel_frames_only(phones, 42)
    # AA1 covers frames 18-26, ah0 (stress and case aside) 27-29; the rest, IY included, is unsupervised
    assert set(np.flatnonzero(w)) == set(range(18, 30))
    assert set(np.unique(w)) == {0.0, 1.0}


def test_anchored_pseudo_labels_keep_the_teacher_on_open_vowels_and_the_anchor_elsewhere(speech):
    from a2f_core.engine import infer
    from a2f_core.train.pseudo import anchored_targets

    torch.manual_seed(0)
    anchor = DualStreamModel().eval()
    audio = speech[:32000]                                      # 2 s: 60 frames
    n = 60
    teacher = np.full((n, 52), 0.75, np.float32)
    phones = [("SIL", 0.0, 0.5), ("P", 0.5, 0.6), ("AE1", 0.6, 1.0), ("M", 1.0, 1.1), ("SIL", 1.1, 2.0)]
    out = anchored_targets(teacher, phones, audio, anchor)
    mine = infer(audio, anchor, rate=16000).values[:n]
    assert out.shape == (n, 52)
    assert np.array_equal(out[18:30], teacher[18:30])           # AE1: frames 18-29
    rest = np.r_[0:18, 30:n]
    assert np.allclose(out[rest], mine[rest], atol=1e-6) and not np.allclose(out[rest], 0.75)


def test_manifest_can_leave_one_voices_bilabials_unsupervised(tmp_path):
    """--skip-bilabials-of piper: the Piper clips lose the frames around p/b/m, espeak-ng clips keep all;
    --leave-out piper: no Piper clip is read."""
    import json

    from a2f_core.train import load_manifest

    phones = [{"label": "_", "cls": "sil", "start": 0.0, "end": 0.5}, {"label": "b", "cls": "bilabial",
              "start": 0.5, "end": 0.6}, {"label": "a", "cls": "vowel_open", "start": 0.6, "end": 1.4}]
    with open(tmp_path / "manifest.jsonl", "w") as f:
        for i, source in enumerate(("espeak-ng", "piper")):
            np.savez(tmp_path / f"c{i}.npz", values=np.zeros((42, 52), np.float32))
            f.write(json.dumps({"id": f"c{i}", "audio": f"c{i}.wav", "curves": f"c{i}.npz", "lang": "en",
                                "source": source, "phones": phones}) + "\n")
    plain = load_manifest(tmp_path / "manifest.jsonl")
    assert all(it.frame_weight is None for it in plain)
    esp, pip = load_manifest(tmp_path / "manifest.jsonl", skip_bilabials_of=["piper"])
    assert esp.source == "espeak-ng" and esp.frame_weight is None
    assert pip.source == "piper" and len(pip.frame_weight) == 42
    off = set(np.flatnonzero(pip.frame_weight == 0))
    assert set(range(15, 18)) <= off <= set(range(13, 21))   # b (frames 15-17) and 2 frames either side
    only = load_manifest(tmp_path / "manifest.jsonl", leave_out=["piper"])
    assert [it.source for it in only] == ["espeak-ng"]
    esp, pip = load_manifest(tmp_path / "manifest.jsonl", bilabial_weight={"piper": 4.0})
    assert esp.frame_weight is None
    assert set(np.flatnonzero(pip.frame_weight == 4.0)) == off and set(np.unique(pip.frame_weight)) == {1.0, 4.0}


def test_train_cli_records_where_a_fine_tune_started(tmp_path, speech, monkeypatch):
    """The checkpoint's metadata names the --init checkpoint (path, sha256, its own metadata) and the data;
    --threads holds for the training steps only."""
    from a2f_core.__main__ import main
    from a2f_core.model import save_checkpoint
    from a2f_core.model.checkpoint import file_sha256

    item = tiny_pairs(tmp_path, speech, n=1)[0]
    start = tmp_path / "start.pt"
    save_checkpoint(DualStreamModel(), start, meta={"step": 7})
    pair = f"{item.audio},{tmp_path / 'a0.csv'}"
    threads_seen, real_train, before = [], SequentialTrainer.train, torch.get_num_threads()
    monkeypatch.setattr(SequentialTrainer, "train",
                        lambda self: threads_seen.append(torch.get_num_threads()) or real_train(self))
    torch.set_num_threads(2)
    try:
        assert main(["train", "--pair", pair, "--init", str(start), "--out", str(tmp_path / "ft"), "--steps",
                     "1", "--batch", "1", "--stretch", "16", "--threads", "1", "-q"]) == 0
        assert threads_seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    meta = load_checkpoint(tmp_path / "ft" / "last.pt").checkpoint_meta
    assert meta["init"]["path"] == str(start) and meta["init"]["sha256"] == file_sha256(start)
    assert meta["init"]["meta"]["step"] == 7
    assert meta["data"]["pairs"] == [pair] and meta["train_config"]["steps"] == 1
    # --position-prior only shapes a new model's start: with --init it is refused, not ignored
    with pytest.raises(SystemExit, match="--position-prior"):
        main(["train", "--pair", pair, "--init", str(start), "--out", str(tmp_path / "pp"), "--position-prior",
              "2", "-q"])
    assert not (tmp_path / "pp").exists()


def test_extremes_term_averages_closed_and_open_frames_each_alone():
    """--w-extremes adds the aperture error's mean over sealed frames plus its mean over wide-open frames."""
    J, C = INDEX["jawOpen"], INDEX["mouthClose"]
    tgt = torch.zeros(1, 100, 52)
    tgt[0, :, J] = 0.15                      # mid opening
    tgt[0, 10:17, J] = tgt[0, 10:17, C] = 0.1  # 7 sealed frames (aperture 0)
    tgt[0, 40:70, J] = 0.5                   # 30 wide-open frames
    pred = tgt.clone()
    pred[0, :, J] = 0.2                      # a model that stays near the mean
    pred[0, :, C] = 0.0
    w = torch.ones_like(tgt)

    def total(w_extremes):
        cfg = TrainConfig(w_extremes=w_extremes)
        return float(SequentialTrainer.loss(_bare(cfg), pred, tgt, w)[0])

    ap_err = (pred[0, :, J] - pred[0, :, C]) - (tgt[0, :, J] - tgt[0, :, C])
    expected = float((ap_err[10:17] ** 2).mean() + (ap_err[40:70] ** 2).mean())
    assert abs((total(2.0) - total(0.0)) - 2.0 * expected) < 1e-4
    # the two classes weigh as much as all frames together, however few they are
    assert expected > 1.5 * float((ap_err ** 2).mean())


def test_seal_term_asks_for_a_closure_near_each_bilabial_not_on_its_frames():
    """--w-seal: on each p/b/m frame the lowest aperture within seal_tolerance frames, squared above seal_level."""
    J, C = INDEX["jawOpen"], INDEX["mouthClose"]
    pred = torch.full((1, 40, 52), 0.3)
    pred[0, :, C] = 0.0
    tgt, w = torch.zeros_like(pred), torch.ones_like(pred)
    seal = torch.zeros(1, 40)
    seal[0, 10:13] = 1.0                      # a p/b/m on frames 10-12
    seal[0, 36:] = -1.0                       # padding past the file's end
    cfg, cfg0 = TrainConfig(w_seal=1.0, seal_tolerance=2, seal_level=0.05), TrainConfig()

    def seal_part(p, s=seal):
        return float(SequentialTrainer.loss(_bare(cfg), p, tgt, w, seal=s)[0]
                     - SequentialTrainer.loss(_bare(cfg0), p, tgt, w, seal=s)[0])

    assert seal_part(pred) == pytest.approx(0.25 ** 2, abs=1e-6)   # open throughout: (0.3 - 0.05)^2
    late = pred.clone()
    late[0, 13, J] = 0.0                      # closed a frame after the phone: frames 11 and 12 see it, 10 does not
    assert seal_part(late) == pytest.approx(0.25 ** 2 / 3, abs=1e-6)
    late[0, 8, J] = 0.02                      # and 2 frames before it, under the level: sealed everywhere
    assert seal_part(late) == pytest.approx(0.0, abs=1e-7)
    # the gradient goes to the most nearly closed frame near the p/b/m, through jawOpen and mouthClose both
    near = pred.clone()
    near[0, 13, J] = 0.1

    def seal_grad(c):
        z = near.clone().requires_grad_(True)
        SequentialTrainer.loss(_bare(c), z, tgt, w, seal=seal)[0].backward()
        return z.grad[0]

    g = seal_grad(cfg) - seal_grad(cfg0)
    assert float(g[13, J]) > 0 and float(g[13, C]) < 0
    assert g[:8].abs().max() == 0 and g[15:].abs().max() == 0
    # padding is never taken for the closure, and a batch with no p/b/m adds nothing
    pad = pred.clone()
    pad[0, 36:, J] = 0.0
    s2 = seal.clone()
    s2[0, 10:13], s2[0, 34:36] = 0.0, 1.0
    assert seal_part(pad, s2) == pytest.approx(0.25 ** 2, abs=1e-6)
    assert seal_part(pred, torch.zeros(1, 40)) == 0.0


def test_step_term_averages_the_mouth_steps_over_the_cap_alone():
    """--w-step: each mouth step beyond step_cap, squared, averaged over those steps; padding and others free."""
    J, C, B = INDEX["jawOpen"], INDEX["mouthClose"], INDEX["eyeBlinkLeft"]
    pred = torch.zeros(1, 30, 52)
    pred[0, 10:, J] = 0.5                     # one step of 0.5 (0.2 over the cap)
    pred[0, 20:, C] = 0.4                     # one of 0.4 (0.1 over)
    pred[0, 5:, B] = 1.0                      # a blink is no mouth step
    pred[0, 28:, J] = 0.0                     # a step into the padding
    tgt, w = pred.clone(), torch.ones_like(pred)
    seal = torch.zeros(1, 30)
    seal[0, 28:] = -1.0
    cfg, cfg0 = TrainConfig(w_step=2.0, step_cap=0.3), TrainConfig()
    z = pred.clone().requires_grad_(True)
    part = SequentialTrainer.loss(_bare(cfg), z, tgt, w, seal=seal)[0] - SequentialTrainer.loss(
        _bare(cfg0), z, tgt, w, seal=seal)[0]
    assert float(part.detach()) == pytest.approx(2.0 * (0.2 ** 2 + 0.1 ** 2) / 2, abs=1e-6)
    part.backward()
    g = z.grad[0]
    assert float(g[9, J]) < 0 < float(g[10, J]) and float(g[19, C]) < 0 < float(g[20, C])   # the step shrinks
    assert g[:, B].abs().max() < 1e-8 and float(g[28, J].abs()) < 1e-8   # the shared terms cancel to rounding
    smooth = torch.full((1, 30, 52), 0.2)
    assert float(SequentialTrainer.loss(_bare(cfg), smooth, smooth, w, seal=seal)[0]
                 - SequentialTrainer.loss(_bare(cfg0), smooth, smooth, w, seal=seal)[0]) == 0.0


def test_seal_frames_come_from_the_phones_of_teacher_and_pseudo_labelled_clips(tmp_path, speech):
    """Items carry their p/b/m frames (TrainItem.seal); sample_batch hands them over, padding marked -1."""
    from a2f_core.train.pseudo import bilabial_frames

    phones = [("SIL", 0.0, 0.5), ("B", 0.5, 0.6), ("AA1", 0.6, 0.9), ("m", 1.0, 1.1)]
    seal = bilabial_frames(phones, 40)
    assert np.flatnonzero(seal).tolist() == [15, 16, 17, 30, 31, 32]
    item = tiny_pairs(tmp_path, speech, n=1)[0]
    T = len(item.target)
    item.seal = np.zeros(T, bool)
    item.seal[20:23] = True
    tr = SequentialTrainer([item], tmp_path / "run", TrainConfig(steps=1, batch=2, stretch=T + 5, warmup=1),
                           ModelConfig(), progress=False)
    got = tr.sample_batch()[5].numpy()
    assert got.shape == (2, T + 5)
    assert np.array_equal(got[:, :T], np.broadcast_to(item.seal, (2, T)).astype(np.float32))
    assert (got[:, T:] == -1).all()


def test_aperture_l1_term_is_the_mean_absolute_aperture_error_and_pulls_to_the_median():
    """--w-aperture-l1 adds mean |aperture error|; its minimiser over a constant prediction is the median."""
    J, C = INDEX["jawOpen"], INDEX["mouthClose"]
    tgt = torch.zeros(1, 10, 52)
    tgt[0, :, J] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5])  # sealed 6 of 10 frames
    w = torch.ones_like(tgt)

    def term(level, weight=1.0):
        pred = tgt.clone()
        pred[0, :, J] = level
        cfg = TrainConfig(w_aperture_l1=weight)
        with_term = float(SequentialTrainer.loss(_bare(cfg), pred, tgt, w)[0])
        cfg0 = TrainConfig(w_aperture_l1=0.0)
        return with_term - float(SequentialTrainer.loss(_bare(cfg0), pred, tgt, w)[0])

    assert abs(term(0.2) - float((torch.tensor([0.2] * 6 + [0.3] * 4)).mean())) < 1e-5
    assert abs(term(0.2, weight=3.0) - 3 * term(0.2)) < 1e-5
    levels = [i / 20 for i in range(11)]
    assert min(levels, key=term) == 0.0          # the median (sealed), where the squared error's best is 0.2


def test_sequence_training_path_is_differentiable():
    torch.manual_seed(0)
    m = DualStreamModel()
    mel = torch.randn(256 + 7, 80)
    emo = torch.randn(256 + 7, 88)
    out = m.forward_sequence(mel, emo)
    out.sum().backward()
    assert m.mel_pos.grad is not None and m.mel_w.grad.abs().sum() > 0 and m.emo_enc.weight.grad.abs().sum() > 0


def test_phone_measures():
    T = 60
    vals = np.zeros((T, 52), np.float32)
    vals[:, INDEX["jawOpen"]] = 0.5
    vals[10:13, INDEX["mouthClose"]] = 0.5       # closed at 10-12
    vals[30:40, INDEX["mouthFunnel"]] = 0.6      # rounded 30-39
    phones = [("SIL", 0.0, 0.3), ("M", 0.34, 0.40), ("AA", 0.5, 0.9), ("UW", 1.0, 1.3), ("IY", 1.4, 1.7),
              ("B", 1.72, 1.78)]
    m = phone_measures(vals, phones)
    assert m["bilabials"] == 2 and m["closure_rate"] == 0.5 and m["closed_each"] == [1, 0]
    assert m["open_vowel_aperture"] == 0.5 and m["rounding_ratio"] > 1.5
    assert m["rest_in_silence"] == 0.0   # jaw open during the 300 ms pause
    assert m["max_mouth_step"] == np.float32(0.6) and m["max_mouth_step_at"] == ["mouthFunnel", 29]  # 29 -> 30, the first


def test_eval_on_a_data_folder_and_as_a_telephone_carries_it(tmp_path, model, monkeypatch):
    """``evaluate`` end to end on a folder holding one aligned English clip (the bundled example): the
    model, the loudness baseline and the teacher are measured; with ``phone_band`` the group is named
    ``real_en_8k`` and the model hears nothing above 4 kHz."""
    import shutil

    import a2f_core.engine as engine
    from a2f_core.demo import example_path
    from a2f_core.eval import evaluate

    ex = example_path()
    (tmp_path / "speech_en").mkdir()
    for suffix in (".wav", ".phones.json"):
        shutil.copy(ex.with_name(ex.stem + suffix), tmp_path / "speech_en" / (ex.stem + suffix))
    heard = []
    real_infer = engine.infer

    def infer(audio, *a, **k):
        heard.append(np.asarray(audio))
        return real_infer(audio, *a, **k)

    monkeypatch.setattr(engine, "infer", infer)
    wide = evaluate(tmp_path, model, plots=False, more=False, synthetic=0)
    narrow = evaluate(tmp_path, model, plots=False, more=False, synthetic=0, phone_band=True)
    assert set(wide["summary"]) == {"real_en", "_clips"} and set(narrow["summary"]) == {"real_en_8k", "_clips"}
    for res in (wide, narrow):
        (g,) = [k for k in res["summary"] if not k.startswith("_")]
        assert set(res["summary"][g]) == {"model", "rms_baseline", "teacher"}
        assert res["summary"][g]["teacher"]["closure_rate"] is not None
        assert res["summary"][g]["rms_baseline"]["open_vowel_aperture"] is not None

    def share_above_4k(x):
        power = np.abs(np.fft.rfft(x)) ** 2
        return power[np.fft.rfftfreq(len(x), 1 / 16000) > 4100].sum() / power.sum()

    assert len(heard) == 2 and len(heard[0]) == len(heard[1])
    assert share_above_4k(heard[0]) > 1e-3 > 1e-6 > share_above_4k(heard[1])
    assert narrow["summary"]["real_en_8k"]["rms_baseline"] != wide["summary"]["real_en"]["rms_baseline"]


def test_rms_baseline_and_pearson(speech):
    c = rms_baseline(speech, int(np.ceil(len(speech) / 16000 * 30)))
    jaw = c.channel("jawOpen")
    assert 0 <= jaw.min() and jaw.max() <= 1 and jaw.std() > 0.1
    assert abs(pearson(jaw, jaw) - 1.0) < 1e-9 and pearson(jaw, np.zeros_like(jaw)) == 0.0


def test_facegood_mapping():
    names = ["mouth_stretch_c", "mouth_pucker_l", "mouth_pucker_r", "eye_blink_l"]
    labels = np.array([[0.5, 0.1, 0.3, 0.9]])
    vals, mask = to_arkit(labels, names)
    assert vals[0, INDEX["jawOpen"]] == 0.5 and vals[0, INDEX["mouthPucker"]] == np.float32(0.3)
    assert mask[INDEX["jawOpen"]] == 1 and mask[INDEX["mouthClose"]] == 0 and mask[INDEX["eyeBlinkLeft"]] == 0


def test_facegood_keep_channels_masks_the_others_out():
    from a2f_core.train.data import TrainItem
    from a2f_core.train.facegood import keep_channels

    names = ["mouth_stretch_c", "mouth_pucker_l", "mouth_pucker_r"]
    vals, mask = to_arkit(np.array([[0.5, 0.1, 0.3], [0.2, 0.0, 0.1]]), names)
    item = TrainItem("clip.wav", vals, mask, 3.0, "zh", "facegood")
    (jaw_only,) = keep_channels([item], ["jawOpen"])
    assert jaw_only.mask.sum() == 1 and jaw_only.mask[INDEX["jawOpen"]] == 1
    assert jaw_only.weight == 3.0 and jaw_only.target is item.target
    assert item.mask[INDEX["mouthPucker"]] == 1                     # the original is left as it was
    for bad in ("mouthClose", "jawopen"):                            # not captured / not a blendshape
        with pytest.raises(ValueError, match=bad):
            keep_channels([item], [bad])


def test_torchrun_two_processes_keep_replicas_identical(tmp_path, speech):
    """`python -m a2f_core train` under torchrun: 2 gloo processes on CPU, DDP, one shard of files each."""
    import json
    import os
    import subprocess
    import sys

    items = tiny_pairs(tmp_path, speech, n=4)
    pairs = []
    for i, it in enumerate(items):
        pairs += ["--pair", f"{it.audio},{tmp_path / f'a{i}.csv'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "a2f_core", "train", *pairs, "--out", str(tmp_path / "ddp"), "--cache", str(tmp_path / "cache"),
           "--steps", "3", "--batch", "1", "--stretch", "16", "--seed", "3", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path / "ddp" / "replicas.json").read_text())
    assert rep["world_size"] == 2 and rep["steps"] == 3
    assert rep["max_param_diff"] == 0.0
    m = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert m.checkpoint_meta["step"] == 3
    # the replicas trained: parameters moved away from the seed's initialisation
    torch.manual_seed(3)
    assert not torch.allclose(DualStreamModel().queries, m.queries)


def test_batched_sequence_and_closed_form_smoothing_match_per_stretch():
    torch.manual_seed(1)
    m = DualStreamModel()
    with torch.no_grad():
        m.smoothing_param.uniform_(-2, 2)
        mel, emo = torch.randn(3, 256 + 20, 80), torch.randn(3, 256 + 20, 88)
        batched = m.forward_sequence(mel, emo)
        single = torch.stack([m.forward_sequence(mel[i], emo[i]) for i in range(3)])
        assert torch.allclose(batched, single, atol=1e-6)
        y = m.smooth_sequence(batched)
        for i in range(3):
            m.reset_temporal_state()
            steps = torch.stack([m.apply_temporal_smoothing(batched[i, t:t + 1])[0] for t in range(batched.shape[1])])
            assert torch.allclose(steps, y[i], atol=1e-6)


def test_facegood_mapping_report_shows_the_jaw_moving_with_the_voice():
    from pathlib import Path

    from a2f_core.train.facegood import MAPPING, mapping_report

    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "facegood"
    if not folder.is_dir():
        pytest.skip("shared/data/facegood is not here")
    rows = {r["arkit"]: r for r in mapping_report(folder)}
    assert set(rows) == set(MAPPING)
    assert rows["jawOpen"]["r_loudness"] > 0.5 and rows["jawOpen"]["active"] > 0.2
    assert rows["jawOpen"]["r_loudness"] > rows["mouthPucker"]["r_loudness"]   # lip shapes are not loudness


def test_facegood_dense_copies_cut_pauses_and_keep_curves_on_the_audio(tmp_path):
    """Words of 0.6 s between pauses of 1.2 s: the copies keep every word, cut each pause to 0.1-0.3 s
    (at speed 0.9-1.2), the curves stay on their audio, and a second call rewrites nothing (cached features
    stay valid)."""
    import os

    from a2f_core.train.data import TrainItem
    from a2f_core.train.facegood import dense_variants

    rate, word, gap, n_words = 16000, 0.6, 1.2, 5

    def frame_peak(a, n):   # per 30 fps frame: the largest sample
        return np.array([np.abs(a[i * rate // 30: (i + 1) * rate // 30]).max() for i in range(n)])

    t = np.arange(int(rate * word)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    audio = np.concatenate([np.concatenate([np.zeros(int(rate * gap), np.float32), tone])
                            for _ in range(n_words)] + [np.zeros(int(rate * gap), np.float32)])
    sf.write(tmp_path / "c.wav", audio, rate)
    T = len(audio) * 30 // rate
    target = np.zeros((T, 52), np.float32)
    loud = frame_peak(audio, T) > 0.1
    target[loud, INDEX["jawOpen"]] = 0.5
    item = TrainItem(str(tmp_path / "c.wav"), target, np.ones(52, np.float32), 3.0, "zh", "facegood", {"id": "c"})
    copies = dense_variants([item], tmp_path / "dense", 3)
    assert len(copies) == 3
    for c in copies:
        a = sf.read(c.audio, dtype="float32")[0]
        s = c.meta["speed"]
        assert 0.9 <= s <= 1.2 and c.weight == 3.0 and c.source == "facegood-dense"
        assert abs(len(c.target) - len(a) * 30 / rate) <= 1
        jaw = c.target[:, INDEX["jawOpen"]] > 0.25
        starts = np.flatnonzero(np.diff(jaw.astype(int)) == 1)
        assert len(starts) == n_words                                   # every word kept
        assert abs(jaw.sum() - n_words * word * 30 / s) <= 2 * n_words   # at its new speed
        gaps = np.diff(np.flatnonzero(np.diff(jaw.astype(int)) != 0))[1::2] / 30 * s
        assert np.all(gaps >= 0.1 - 0.07) and np.all(gaps <= 0.3 + 0.07)   # pauses cut short
        env = frame_peak(a, len(jaw)) > 0.1
        edges = [np.flatnonzero(np.diff(x.astype(int)) != 0) for x in (jaw, env)]
        assert len(edges[0]) == len(edges[1]) and np.abs(edges[0] - edges[1]).max() <= 1   # curves on their audio
    slow = dense_variants([item], tmp_path / "slow", 1, speed=(0.9, 0.95))[0]   # slowed: curves to the end
    assert slow.meta["speed"] < 1
    assert abs(len(slow.target) - len(sf.read(slow.audio)[0]) * 30 / rate) <= 1
    mtimes = [os.stat(c.audio).st_mtime_ns for c in copies]
    again = dense_variants([item], tmp_path / "dense", 3)
    assert [os.stat(c.audio).st_mtime_ns for c in again] == mtimes
    assert all(np.array_equal(a.target, b.target) for a, b in zip(copies, again))
    # the same samples written at another second: libsndfile's PEAK chunk holds the time of writing
    for c in copies:
        raw = bytearray(Path(c.audio).read_bytes())
        at = raw.index(b"PEAK") + 12   # chunk id, size, version, then the timestamp
        raw[at:at + 4] = (int.from_bytes(raw[at:at + 4], "little") - 7).to_bytes(4, "little")
        Path(c.audio).write_bytes(bytes(raw))
    mtimes = [os.stat(c.audio).st_mtime_ns for c in copies]
    dense_variants([item], tmp_path / "dense", 3)
    assert [os.stat(c.audio).st_mtime_ns for c in copies] == mtimes


def test_revive_reinitialises_only_outputs_stuck_at_zero_that_the_targets_use(tmp_path, speech):
    """A blendshape whose sigmoid is saturated at 0 gets no gradient; ``revive`` gives its decoder row a
    fresh start when the targets use it, and leaves alone a dead channel whose targets are 0 too."""
    items = tiny_pairs(tmp_path, speech)
    model = DualStreamModel(ModelConfig())
    jaw, press = INDEX["jawOpen"], INDEX["mouthPressLeft"]
    with torch.no_grad():
        model.dec2.bias[[jaw, press]] = -40.0
    live = model.dec2.weight[INDEX["eyeBlinkLeft"]].detach().clone()
    cfg = TrainConfig(steps=1, batch=1, stretch=32, warmup=1, revive=True, seed=3)
    tr = SequentialTrainer(items, tmp_path / "run", cfg, ModelConfig(), cache_dir=tmp_path / "cache",
                           init=model, progress=False)
    assert tr.provenance["revived"] == ["jawOpen"]
    mean_jaw = float(np.mean(np.concatenate([i.target[:, jaw] for i in items])))
    assert torch.sigmoid(model.dec2.bias[jaw]).item() == pytest.approx(np.clip(mean_jaw, 0.01, 0.5), rel=1e-4)
    assert model.dec2.bias[press].item() == -40.0
    assert torch.equal(model.dec2.weight[INDEX["eyeBlinkLeft"]], live)
    tr.train()
    assert load_checkpoint(tmp_path / "run" / "last.pt").checkpoint_meta["revived"] == ["jawOpen"]
    # revive_from: the revived channel also takes a live channel's query, band and stream mix and smoothing
    model2 = DualStreamModel(ModelConfig())
    with torch.no_grad():
        model2.dec2.bias[jaw] = -40.0
    funnel = INDEX["mouthFunnel"]
    SequentialTrainer(items, tmp_path / "run2", TrainConfig(**{**cfg.__dict__, "revive_from": "mouthFunnel"}),
                      ModelConfig(), cache_dir=tmp_path / "cache", init=model2, progress=False)
    for t in (model2.queries, model2.band_logits, model2.stream_logits, model2.smoothing_param):
        assert torch.equal(t[jaw], t[funnel])
    assert not torch.equal(model2.queries[press], model2.queries[funnel])
    # revive_no_l1: the revived channel leaves the L1 term, the others keep it
    model3 = DualStreamModel(ModelConfig())
    with torch.no_grad():
        model3.dec2.bias[jaw] = -40.0
    tr3 = SequentialTrainer(items, tmp_path / "run3", TrainConfig(**{**cfg.__dict__, "revive_no_l1": True}),
                            ModelConfig(), cache_dir=tmp_path / "cache", init=model3, progress=False)
    assert tr3.l1_channels[jaw] == 0 and int(tr3.l1_channels.sum()) == 51
    assert int(tr.l1_channels.sum()) == 52          # without the flag every channel keeps L1


def test_l1_term_skips_the_channels_left_out_and_keeps_the_others_weight():
    """A channel out of ``l1_channels`` gets no L1 gradient; the others get the same gradient as when
    every channel is in (the term's denominator does not shrink)."""
    close, jaw = INDEX["mouthClose"], INDEX["jawOpen"]
    tgt = torch.zeros(1, 10, 52)
    tgt[0, :3, close] = 0.3
    w = torch.ones_like(tgt)
    cfg = TrainConfig(w_mse=0.0, w_mouth=0.0, w_expr=0.0, w_velocity=0.0, w_smooth=0.0, w_l1=1.0)

    def grad(channels):
        pred = torch.full((1, 10, 52), 0.1, requires_grad=True)
        SequentialTrainer.loss(_bare(cfg, channels), pred, tgt, w)[0].backward()
        return pred.grad[0]

    some = torch.ones(52)
    some[close] = 0.0
    full, part = grad(torch.ones(52)), grad(some)
    assert full[:, close].abs().sum() > 0 and part[:, close].abs().sum() == 0
    assert torch.equal(full[:, jaw], part[:, jaw])


def test_floor_term_keeps_a_gradient_where_the_sigmoid_has_saturated():
    """--w-floor: a mouth output at logit -14 gets (almost) no gradient from MSE and L1, and a clear one
    from the floor term; outputs above the floor, and the channels outside the mouth, get none from it."""
    close, blink, jaw = INDEX["mouthClose"], INDEX["eyeBlinkLeft"], INDEX["jawOpen"]
    logits = torch.full((1, 20, 52), -14.0)
    logits[..., jaw] = 0.0
    tgt = torch.zeros(1, 20, 52)
    tgt[0, 5:8, close] = 0.3                 # the channel is used on a few frames
    w = torch.ones_like(tgt)

    def grads(w_floor):
        z = logits.clone().requires_grad_(True)
        cfg = TrainConfig(w_floor=w_floor)
        SequentialTrainer.loss(_bare(cfg), torch.sigmoid(z), tgt, w)[0].backward()
        return z.grad[0]

    without, with_floor = grads(0.0), grads(1.0)
    assert without[:, close].abs().max() < 1e-5
    assert (with_floor[:, close] < -1e-3).all()          # descending the loss raises the logit
    assert torch.equal(with_floor[:, blink], without[:, blink])
    assert torch.allclose(with_floor[:, jaw], without[:, jaw])   # above the floor: no push


def test_aperture_lips_sends_the_aperture_error_to_mouth_close_only():
    """With ``aperture_lips`` a lip aperture error moves mouthClose and leaves jawOpen to its own target;
    without it both move (and dropping the jaw is the quicker way to seal the lips)."""
    jaw, close = INDEX["jawOpen"], INDEX["mouthClose"]
    tgt = torch.zeros(1, 12, 52)
    tgt[0, :, jaw] = 0.2
    tgt[0, 4:8, close] = 0.18                 # sealed on 4 frames, the jaw a little open
    w = torch.ones_like(tgt)

    def grads(aperture_lips):
        pred = tgt.clone()
        pred[0, :, close] = 0.0               # the jaw is right, the lips do not seal
        pred.requires_grad_(True)
        cfg = TrainConfig(w_extremes=1.0, w_aperture_l1=1.0, aperture_lips=aperture_lips)
        SequentialTrainer.loss(_bare(cfg), pred, tgt, w)[0].backward()
        return pred.grad[0]

    both, lips = grads(False), grads(True)
    assert both[4:8, jaw].abs().min() > 0 and lips[:, jaw].abs().max() == 0
    assert torch.equal(both[:, close], lips[:, close]) and (lips[4:8, close] < 0).all()


def test_aperture_split_routes_the_aperture_error_by_frame():
    """With ``aperture_split`` the aperture error moves mouthClose alone where the teacher seals with it and
    both channels elsewhere, as without the switch; the loss's value is the same."""
    jaw, close = INDEX["jawOpen"], INDEX["mouthClose"]
    tgt = torch.zeros(1, 12, 52)
    tgt[0, :, jaw] = 0.2
    tgt[0, 4:8, close] = 0.18                 # sealed on 4 frames, the jaw a little open
    w = torch.ones_like(tgt)

    def run(**switch):
        pred = tgt.clone()
        pred[0, :, jaw] = 0.3                 # the jaw too open everywhere
        pred[0, :, close] = 0.05              # mouthClose too low at 4..7, a little up elsewhere
        pred.requires_grad_(True)
        cfg = TrainConfig(w_extremes=1.0, w_aperture_l1=1.0, **switch)
        loss = SequentialTrainer.loss(_bare(cfg), pred, tgt, w)[0]
        loss.backward()
        return float(loss.detach()), pred.grad[0]

    (plain_loss, plain), (split_loss, split) = run(), run(aperture_split=True)
    _, lips = run(aperture_lips=True)
    assert split_loss == pytest.approx(plain_loss)
    sealed, other = [4, 5, 6, 7], [0, 1, 2, 3, 8, 9, 10, 11]
    # sealed frames: only mouthClose hears the aperture, the jaw keeps its own pull (as with aperture_lips)
    assert torch.allclose(split[sealed, jaw], lips[sealed, jaw])
    assert not torch.allclose(split[sealed, jaw], plain[sealed, jaw])
    assert torch.equal(split[:, close], plain[:, close]) and (split[sealed, close] < 0).all()
    # elsewhere both channels hear it, as without the switch
    assert torch.equal(split[other, jaw], plain[other, jaw])


def test_train_refuses_switches_that_clash_or_would_do_nothing(tmp_path):
    from a2f_core.__main__ import main

    with pytest.raises(SystemExit, match="give one"):
        main(["train", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"),
              "--aperture-lips", "--aperture-split"])
    for switch in (["--revive-from", "jawOpen"], ["--revive-no-l1"]):
        with pytest.raises(SystemExit, match="add --revive"):
            main(["train", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"), *switch])
    for switch in (["--real-skip-bilabials"], ["--real-open-vowels-only"], ["--real-anchor", "v4.pt"]):
        with pytest.raises(SystemExit, match="add --real DATA"):
            main(["train", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"), *switch])
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["train", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"),
              "--real", str(tmp_path), "--real-anchor", str(tmp_path / "missing.pt")])
    with pytest.raises(SystemExit):       # argparse: the frame choices exclude each other
        main(["train", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"),
              "--real", str(tmp_path), "--real-open-vowels-only", "--real-skip-bilabials"])
    for switch, msg in ((["--seal-tolerance", "-1"], "0 frames or more"), (["--seal-level", "1.5"], "up to")):
        with pytest.raises(SystemExit, match=msg):
            main(["train", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"), *switch])


def test_train_refuses_the_seal_term_without_phone_timings(tmp_path, speech):
    """--w-seal on captures alone (no teacher manifest, no --real) would do nothing: a one-line error."""
    from a2f_core.__main__ import main

    tiny_pairs(tmp_path, speech, n=1)
    with pytest.raises(SystemExit, match="needs phone timings"):
        main(["train", "--pair", f"{tmp_path / 'a0.wav'},{tmp_path / 'a0.csv'}", "--out", str(tmp_path / "o"),
              "--w-seal", "3"])
    assert not (tmp_path / "o").exists()


def test_close_rest_holds_mouth_close_down_only_where_the_teacher_does_not_seal():
    """``w_close_rest`` adds mouthClose's squared error on the frames where the teacher's mouthClose is down,
    averaged over those frames alone; frames where it seals and the other channels get nothing from it."""
    close = INDEX["mouthClose"]
    tgt = torch.zeros(1, 10, 52)
    tgt[0, 6:, close] = 0.3                   # the teacher seals on the last 4 frames
    w = torch.ones_like(tgt)
    pred = tgt.clone()
    pred[0, :, close] += 0.1                  # mouthClose 0.1 too high everywhere
    pred[0, :, INDEX["jawOpen"]] = 0.2        # and an error elsewhere
    pred.requires_grad_(True)
    base = SequentialTrainer.loss(_bare(TrainConfig()), pred, tgt, w)[0]
    held = SequentialTrainer.loss(_bare(TrainConfig(w_close_rest=2.0)), pred, tgt, w)[0]
    assert float((held - base).detach()) == pytest.approx(2.0 * 0.1 ** 2)
    (held - base).backward()
    g = pred.grad[0]
    assert torch.allclose(g[:6, close], torch.full((6,), 2.0 * 2 * 0.1 / 6))
    others = torch.cat([g[6:, close], g[:, :close].flatten(), g[:, close + 1:].flatten()])
    assert others.abs().max() < 1e-8          # the shared terms cancel to rounding
