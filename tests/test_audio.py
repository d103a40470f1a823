import numpy as np
import pytest
import soundfile as sf

from a2f_core.audio import SAMPLE_RATE, audio_info, iter_audio, load_audio
from a2f_core.errors import AudioError
from tests.troubleshooting import rows


def tone(seconds=1.0, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@rows(('8 / 11.025 / 22.05 / 44.1 / 48 / 96 kHz',
       'resampled to 16 kHz (soxr); length and pitch kept'))
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000])
def test_any_rate_becomes_16k_with_same_duration(tmp_path, rate):
    p = tmp_path / f"t{rate}.wav"
    sf.write(p, tone(1.5, rate), rate)
    x = load_audio(p)
    assert x.dtype == np.float32
    assert abs(len(x) - 1.5 * SAMPLE_RATE) <= 2
    # the tone survives resampling: its spectrum peaks at 440 Hz
    spec = np.abs(np.fft.rfft(x[4000:20000]))
    assert abs(np.argmax(spec) * SAMPLE_RATE / 16000 - 440) < 3


@rows(('stereo, 6 channels',
       'downmixed to mono'))
def test_stereo_and_multichannel_are_downmixed(tmp_path):
    left = tone(1.0)
    data = np.stack([left, np.zeros_like(left)], axis=1)
    p = tmp_path / "stereo.wav"
    sf.write(p, data, 16000)
    x = load_audio(p)
    np.testing.assert_allclose(x, left / 2, atol=1e-4)
    six = np.repeat(left[:, None], 6, axis=1)
    sf.write(tmp_path / "six.wav", six, 16000)
    np.testing.assert_allclose(load_audio(tmp_path / "six.wav"), left, atol=1e-4)


@rows(('24-bit PCM and float WAV, FLAC, OGG Vorbis',
       'read as any other file'))
@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_24"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_formats(tmp_path, fmt, subtype):
    p = tmp_path / f"t.{fmt.lower()}"
    sf.write(p, tone(1.0, 44100), 44100, format=fmt, subtype=subtype)
    x = load_audio(p)
    assert abs(len(x) - 16000) <= 2
    assert 0.3 < np.abs(x).max() < 0.7


def test_array_input_needs_rate_and_blocks_join_to_whole():
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(np.zeros(100, np.float32))
    x = tone(5.0, 48000)
    whole = load_audio(x, rate=48000)
    parts = np.concatenate(list(iter_audio(x, rate=48000, block_seconds=0.7)))
    np.testing.assert_array_equal(whole, parts)


def test_silence_is_valid():
    x = load_audio(np.zeros(32000, np.float32), rate=16000)
    assert len(x) == 32000 and not x.any()


def test_file_blocks_match_whole_file(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, tone(4.0, 44100), 44100)
    blocks = list(iter_audio(p, block_seconds=0.5))
    assert len(blocks) > 4
    assert abs(sum(len(b) for b in blocks) - 64000) <= 2


@rows(('missing file, a folder given as a file',
       '`error: <path>: no such file` / `is a directory, not an audio file`'),
      ('empty (0-byte) file, a text file renamed `.wav`',
       '`error: <path>: file is empty (0 bytes)` / `not a readable audio file (...)`'),
      ('audio with zero samples',
       '`error: <path>: audio has zero length`'),
      ('NaN or infinite samples in a file',
       '`error: <path>: audio contains NaN or infinite samples; re-export it as plain PCM`'))
def test_bad_inputs_raise_one_line_errors(tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "nope.wav"
    cases["dir"] = tmp_path
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cases["empty"] = empty
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    cases["text"] = text
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), 16000)
    cases["zero"] = zero
    nan = tmp_path / "nan.wav"
    bad = tone(1.0)
    bad[100] = np.nan
    sf.write(nan, bad, 16000, subtype="FLOAT")
    cases["nan"] = nan
    for name, path in cases.items():
        with pytest.raises(AudioError) as err:
            load_audio(path)
        msg = str(err.value)
        assert "\n" not in msg and str(path.name) in msg, (name, msg)


@rows(('NaN / inf or no samples in an array (Python API)',
       '`AudioError`: the same one line'))
def test_nan_and_inf_arrays_are_refused():
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(1000, np.float32)
        x[5] = bad
        with pytest.raises(AudioError, match="NaN or infinite"):
            load_audio(x, rate=16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(np.zeros(0, np.float32), rate=16000)


def test_audio_info(tmp_path):
    p = tmp_path / "i.wav"
    sf.write(p, np.zeros((22050, 2), np.float32), 22050)
    assert audio_info(p) == (1.0, 22050, 2)


@rows(('a WAV cut short (download broke off)',
       'the samples that are there are used'),
      ('a WAV header without data',
       '`error: <path>: not a readable audio file (...)`'))
def test_truncated_and_header_only_files(tmp_path):
    full = tmp_path / "full.wav"
    sf.write(full, tone(2.0), 16000)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:30000])          # a download that broke off: use what is there
    x = load_audio(cut)
    assert 14000 < len(x) < 15100
    head = tmp_path / "head.wav"
    head.write_bytes(data[:40])            # a header and nothing else
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(head)
