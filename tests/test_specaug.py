"""Channel augmentation of log-mel stretches: a filter and a formant scale, silence kept silent."""

import numpy as np

from a2f_core.features.mel import LOG_FLOOR, log_mel, num_frames
from a2f_core.model import ModelConfig
from a2f_core.train import SequentialTrainer, TrainConfig
from a2f_core.train.specaug import DB, SpecAugConfig, augment_mel, colour_curve, warp_bands

from tests.test_train_eval import tiny_pairs


def _mel(speech):
    return log_mel(speech, 0, 0, num_frames(len(speech)))


def test_colour_is_a_per_band_gain_within_its_ranges(speech):
    """Without a warp the augmentation multiplies each band's power by one gain, the same in every frame."""
    mel = _mel(speech)
    cfg = SpecAugConfig(warp=0.0)
    out = augment_mel(mel, np.random.default_rng(3), cfg)
    rng = np.random.default_rng(3)
    rng.uniform(1.0, 1.0)                          # the warp factor's draw
    curve = colour_curve(rng, 80, cfg)
    loud = mel > np.log(1e-2)                     # power far above the floor: the offset is exact there
    assert loud.mean() > 0.3
    assert np.abs((out - mel) - curve[None])[loud].max() < 1e-3
    assert np.abs(curve).max() <= (cfg.gain_db + cfg.tilt_db / 2 + 3 * cfg.eq_db) * DB + 1e-5
    assert np.ptp(curve) > 0.1                     # a colour, not only a gain


def test_digital_silence_stays_at_the_floor(speech):
    x = speech.copy()
    x[16000:32000] = 0.0                          # one second of digital silence
    mel = _mel(x)
    floor = np.float32(np.log(LOG_FLOOR))
    silent = (mel <= floor + 1e-4).all(1)
    assert silent.sum() >= 20
    for seed in range(5):
        out = augment_mel(mel, np.random.default_rng(seed))
        assert np.all(out[silent] <= floor + 1e-4)
        assert np.all(np.isfinite(out)) and out.min() >= floor - 1e-4


def test_warp_moves_a_formant_up_or_down():
    """A peak at one band moves to higher bands for a factor above 1, lower below; factor 1 is identity."""
    mel = np.full((3, 80), -5.0, np.float32)
    mel[:, 40] = 3.0
    assert warp_bands(mel, 1.0) is mel
    up, down = warp_bands(mel, 1.15), warp_bands(mel, 0.87)
    assert up[0].argmax() > 40 > down[0].argmax()
    assert np.allclose(up[0], up[1])


def test_trainer_applies_spec_aug_only_when_asked(tmp_path, speech):
    items = tiny_pairs(tmp_path, speech, n=1)
    batches = {}
    for share in (0.0, 1.0):
        cfg = TrainConfig(steps=1, batch=1, stretch=16, seed=5, spec_aug=share)
        tr = SequentialTrainer(items, tmp_path / f"run{share}", cfg, ModelConfig(), cache_dir=tmp_path / "cache",
                               progress=False)
        batches[share] = tr.sample_batch()
    plain, aug = batches[0.0], batches[1.0]
    assert np.array_equal(plain[2].numpy(), aug[2].numpy())     # the same stretches and targets
    assert not np.allclose(plain[0].numpy(), aug[0].numpy())    # the log-mel coloured
    assert np.array_equal(plain[1].numpy(), aug[1].numpy())     # the eGeMAPS stream untouched
