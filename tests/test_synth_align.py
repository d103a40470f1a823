"""Aligning real speech in any language by espeak-ng synthesis and time warping."""

from pathlib import Path

import numpy as np
import pytest

from a2f_core.teacher.synth_align import dtw_path, reading, transcribed_clips
from tests.troubleshooting import rows

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_readings_give_espeak_kana_and_pinyin():
    pytest.importorskip("pypinyin")
    pytest.importorskip("fugashi")
    assert reading("妈妈骂马。", "zh") == "ma1 ma1 ma4 ma3"
    ja = reading("電球がともっていた", "ja")
    assert "デンキュウ" in ja and not any("\u4e00" <= ch <= "\u9fff" for ch in ja)   # no kanji left
    assert reading("  Bob bought a map. ", "en") == "Bob bought a map."


def test_dtw_follows_a_known_stretch():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 5))
    b = np.repeat(a, 2, axis=0)            # the same sequence at half speed
    ia, ib = dtw_path(a, b)
    assert ia[0] == ib[0] == 0 and ia[-1] == 59 and ib[-1] == 119
    assert np.all(np.diff(ia) >= 0) and np.all(np.diff(ib) >= 0)
    assert np.all(np.abs(ib // 2 - ia) <= 0)   # every frame of b sits on the frame of a it repeats


espeak = pytest.importorskip("a2f_core.teacher.espeak")
needs_espeak = pytest.mark.skipif(not espeak.espeak_available(), reason="espeak-ng is not installed")


@needs_espeak
@pytest.mark.parametrize("lang,voice,text", [
    ("en", "en-us+f3", "Maybe my mom bumped the pump, please be calm."),
    ("ja", "ja+f3", "ばびぶべぼ、まみむめも。おはよう、ぱぴぷぺぽ。"),
    ("zh", "cmn-latn-pinyin+f3", "爸爸买马，我们很好。不怕米饭。"),
])
def test_alignment_recovers_phone_times_of_another_voice(lang, voice, text):
    """A different voice at another rate and pitch, whose phone times espeak-ng reports, is aligned
    from its audio and transcript alone: same phones, starts within 60 ms (nine in ten within 30 ms)."""
    pytest.importorskip("pypinyin")
    pytest.importorskip("fugashi")
    import soxr

    from a2f_core.teacher.synth_align import align_by_synthesis

    synth = espeak.EspeakSynth()
    audio, sr, truth = synth.synth(reading(text, lang), voice, lang, rate=140, pitch=75)
    audio = soxr.resample(audio, sr, 16000).astype(np.float32)
    got = align_by_synthesis(audio, text, lang, synth)
    assert [p.label for p in got] == [p.label for p in truth]
    err = np.array([abs(p.start - q.start) for p, q in zip(truth, got)])
    assert np.median(err) <= 0.015 and np.percentile(err, 90) <= 0.03 and err.max() <= 0.06, \
        (np.median(err), np.percentile(err, 90), err.max())
    assert got[0].start == 0 and all(a.end == b.start for a, b in zip(got, got[1:]))


@needs_espeak
@pytest.mark.parametrize("lang,voice,text", [
    ("en", "en-us+f3", "Maybe my mom bumped the pump, please be calm."),
    ("zh", "cmn-latn-pinyin+f3", "爸爸买马，我们很好。不怕米饭。"),
])
def test_alignment_leaves_the_silence_around_a_noisy_recording_to_a_pause(lang, voice, text):
    """A take with 1.2 s of background noise before its speech and 0.9 s after it, the noise only
    18 dB below the voice (a phone or laptop microphone): every phone of the speech is placed on the
    speech, within 100 ms of where it is (half of them within 15 ms), and the noise on either side is
    one pause each. (Warped over the whole take, the noise was matched to phones: starts up to 1.2 s
    early.)"""
    pytest.importorskip("pypinyin")
    import soxr

    from a2f_core.teacher.synth_align import align_by_synthesis

    synth = espeak.EspeakSynth()
    speech, sr, truth = synth.synth(reading(text, lang), voice, lang, rate=140, pitch=75)
    speech = soxr.resample(speech, sr, 16000).astype(np.float32)
    lead, tail = int(1.2 * 16000), int(0.9 * 16000)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=lead + len(speech) + tail) * np.sqrt(np.mean(speech ** 2)) * 10 ** (-18 / 20)
    audio = noise.astype(np.float32)
    audio[lead: lead + len(speech)] += speech
    got = align_by_synthesis(audio, text, lang, synth)
    voiced = [p for p in truth if p.cls != "sil"]
    placed = [p for p in got if p.cls != "sil"]
    assert [p.label for p in placed] == [p.label for p in voiced]
    err = np.array([abs(p.start - (q.start + lead / 16000)) for p, q in zip(placed, voiced)])
    assert np.median(err) <= 0.015 and err.max() <= 0.1, (np.median(err), err.max())
    assert got[0].cls == "sil" and got[0].start == 0 and got[0].end >= 1.2 - 0.06
    assert got[-1].cls == "sil" and got[-1].end == len(audio) / 16000
    assert got[-1].start <= (lead + len(speech)) / 16000 + 0.06
    assert all(a.end == b.start for a, b in zip(got, got[1:]))


@needs_espeak
def test_alignment_agrees_with_pocketsphinx_on_real_english_bilabials():
    """On real English (speech_en, with PocketSphinx's alignments shipped beside the clips) the warped
    espeak-ng phones put a bilabial within 50 ms of at least 80 % of the reference bilabials, and
    speech starts and ends within 100 ms of where PocketSphinx has it (``teach check-align``)."""
    from a2f_core.demo import load_phones
    from a2f_core.teacher.synth_align import check_against_reference

    clips = sorted((DATA / "speech_en").glob("*.phones.json"))
    if not clips:
        pytest.skip("shared/data/speech_en is not here")
    got = check_against_reference([(p.parent / (p.name.removesuffix(".phones.json") + ".wav"), load_phones(p))
                                   for p in clips])
    b = got["bilabial"]
    assert got["clips"] == len(clips) and b["reference"] >= 10 and b["covered"] / b["reference"] >= 0.8, got
    assert got["speech_start_error_s"] <= 0.1 and got["speech_end_error_s"] <= 0.1, got


@needs_espeak
def test_check_align_prints_the_agreement_and_refuses_a_folder_without_english(tmp_path):
    import json

    from tests.test_cli import cli

    if not (DATA / "speech_en").is_dir():
        pytest.skip("shared/data/speech_en is not here")
    r = cli("teach", "check-align", "--data", DATA, "--no-more")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["clips"] == len(list((DATA / "speech_en").glob("*.phones.json")))
    assert got["bilabial"]["covered"] <= got["bilabial"]["reference"]
    r = cli("teach", "check-align", "--data", tmp_path, "--no-more")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "no English clips" in r.stderr, r.stderr


def test_transcribed_clips_cover_japanese_mandarin_and_other_languages():
    if not (DATA / "speech_more").is_dir():
        pytest.skip("shared/data/speech_more is not here")
    langs = {lang for _, lang in transcribed_clips(DATA)}
    assert {"ja", "zh", "es", "fr", "de"} <= langs
    assert all(w.with_suffix(".txt").exists() for w, _ in transcribed_clips(DATA))


@needs_espeak
@rows(("`teach align`: a clip whose language is unknown, an output folder that is not empty",
       "one `error:` line for that clip, the others are written, exit code 2 / refused unless `--overwrite`"),
      ("`teach align --lang` with a code the aligner does not speak",
       "`error: --lang xx: not a language the aligner speaks here (one of en, ja, ...)`, nothing written"))
def test_teach_align_pseudo_labels_a_folder_and_reports_a_bad_clip(tmp_path):
    """``teach align``: every clip with a transcript gets phones and teacher curves; a clip whose
    language is unknown is one error line, the others are still written, exit code 2."""
    pytest.importorskip("fugashi")
    import json

    import soundfile as sf
    import soxr

    from tests.test_cli import cli

    src = tmp_path / "takes"
    src.mkdir()
    synth = espeak.EspeakSynth()
    audio, sr, _ = synth.synth("まみむめも、ぱぴぷぺぽ。", "ja+m3", "ja", rate=150)
    sf.write(src / "ja_mamimumemo.wav", soxr.resample(audio, sr, 16000), 16000)
    (src / "ja_mamimumemo.txt").write_text("まみむめも、ぱぴぷぺぽ。", encoding="utf-8")
    (src / "xx_unknown.wav").write_bytes((src / "ja_mamimumemo.wav").read_bytes())
    (src / "xx_unknown.txt").write_text("?", encoding="utf-8")
    (src / "no_transcript.wav").write_bytes((src / "ja_mamimumemo.wav").read_bytes())
    r = cli("teach", "align", tmp_path / "unused", "-o", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error:")
    r = cli("teach", "align", src, "-o", tmp_path / "out", "--lang", "xx")
    assert r.returncode == 2 and "--lang xx" in r.stderr and "ja" in r.stderr and not (tmp_path / "out").exists()
    r = cli("teach", "align", src, "-o", tmp_path / "out", "-q")
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "xx_unknown" in errors[0] and "Traceback" not in r.stderr
    doc = json.loads((tmp_path / "out" / "ja_mamimumemo.phones.json").read_text(encoding="utf-8"))
    assert doc["aligner"] == "espeak-ng+dtw" and doc["lang"] == "ja"
    assert sum(p["cls"] == "bilabial" for p in doc["phones"]) == 10
    assert (tmp_path / "out" / "ja_mamimumemo.csv").exists() and not (tmp_path / "out" / "xx_unknown.csv").exists()
    r = cli("teach", "align", src, "-o", tmp_path / "out", "-q")      # a filled folder is not written over
    assert r.returncode == 2 and "--overwrite" in r.stderr
