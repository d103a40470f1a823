"""Aligning real speech in any language by espeak-ng synthesis and time warping."""

from pathlib import Path

import numpy as np
import pytest

from a2f_core.teacher.synth_align import agreement, dtw_path, reading, transcribed_clips
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
def test_alignment_agrees_with_pocketsphinx_on_real_english_bilabials():
    """On real English (speech_en, with PocketSphinx's alignments shipped beside the clips) the warped
    espeak-ng phones put a bilabial within 50 ms of at least 80 % of the reference bilabials."""
    from a2f_core.audio import load_audio
    from a2f_core.demo import load_phones
    from a2f_core.eval import CLASS_AS_ARPABET
    from a2f_core.teacher.synth_align import align_by_synthesis

    clips = sorted((DATA / "speech_en").glob("*.phones.json"))
    if not clips:
        pytest.skip("shared/data/speech_en is not here")
    covered = total = 0
    for ref_path in clips:
        wav = ref_path.parent / (ref_path.name.removesuffix(".phones.json") + ".wav")
        phones = align_by_synthesis(load_audio(wav), wav.with_suffix(".txt").read_text(), "en")
        hyp = [(CLASS_AS_ARPABET.get(p.cls, p.cls), p.start, p.end) for p in phones]
        a = agreement(hyp, load_phones(ref_path))["bilabial"]
        covered, total = covered + a["covered"], total + a["reference"]
    assert total >= 10 and covered / total >= 0.8, (covered, total)


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
