import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from a2f_core.features.mel import num_frames
from tests.troubleshooting import rows

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "a2f_core", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=300)


@pytest.fixture(scope="module")
def wav(tmp_path_factory, speech):
    p = tmp_path_factory.mktemp("wav") / "clip 日本.wav"  # spaces and non-ASCII in the name
    sf.write(p, np.stack([speech[:40000], speech[:40000]], 1), 16000)  # stereo
    return p


@rows(('spaces and non-ASCII in the path, a stereo file',
       'read and written as usual'))
def test_infer_writes_csv_with_54_columns(wav, checkpoint, tmp_path):
    out = tmp_path / "out.csv"
    r = cli("infer", wav, "-o", out, "--checkpoint", checkpoint)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(open(out)))
    assert len(rows[0]) == 54 and rows[0][:3] == ["frame", "time", "eyeBlinkLeft"]
    assert len(rows) - 1 == 75  # 2.5 s x 30 fps


@pytest.mark.parametrize("args,suffix", [((), ".json"), ((), ".npz"), (("--format", "livelink"), ".csv"),
                                         (("--fps", "24"), ".csv")])
def test_infer_other_formats(wav, checkpoint, tmp_path, args, suffix):
    out = tmp_path / f"out{suffix}"
    r = cli("infer", wav, "-o", out, "--checkpoint", checkpoint, *args)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 1000


@rows(('output file exists',
       'refused unless `--overwrite`; outputs are written to a temporary file and renamed'))
def test_refuses_to_overwrite_without_flag(wav, checkpoint, tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("precious")
    r = cli("infer", wav, "-o", out, "--checkpoint", checkpoint)
    assert r.returncode != 0 and "--overwrite" in r.stderr and out.read_text() == "precious"
    r = cli("infer", wav, "-o", out, "--checkpoint", checkpoint, "--overwrite")
    assert r.returncode == 0 and out.read_text().startswith("frame,time")


def _bad_inputs(tmp_path, wav):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("hello\n" * 100)
    zero = tmp_path / "zero.wav"
    sf.write(zero, np.zeros(0, np.float32), 16000)
    nan = tmp_path / "nan.wav"
    x = np.zeros(16000, np.float32)
    x[10] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    return {"missing": tmp_path / "missing.wav", "empty": empty, "text": text, "zero length": zero, "nan": nan}


@rows(('any unusable audio on the command line',
       'one line `error: ...`, exit code 2, no traceback, no output file'))
def test_bad_inputs_give_one_line_and_nonzero_exit(wav, checkpoint, tmp_path):
    for name, path in _bad_inputs(tmp_path, wav).items():
        out = tmp_path / f"{name}.csv"
        r = cli("infer", path, "-o", out, "--checkpoint", checkpoint)
        assert r.returncode != 0, name
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists()


@rows(('command line: bad output name or checkpoint',
       'one line `error: ...` naming it, exit code 2'))
def test_bad_outputs_and_checkpoints(wav, checkpoint, tmp_path):
    cases = [(("-o", tmp_path / "x.txt", "--checkpoint", checkpoint), "unknown output format"),
             (("-o", tmp_path / "no" / "x.csv", "--checkpoint", checkpoint), "does not exist"),
             (("-o", tmp_path / "x.csv", "--checkpoint", tmp_path / "missing.pt"), "not found")]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    cases.append((("-o", tmp_path / "y.csv", "--checkpoint", junk), "not a readable"))
    for args, msg in cases:
        r = cli("infer", wav, *args)
        assert r.returncode != 0 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.skipif(
    any((ROOT / "a2f_core" / "weights").glob("*.pt")), reason="a trained model is installed")
def test_no_trained_model_is_said_clearly(wav, tmp_path):
    r = cli("infer", wav, "-o", tmp_path / "x.csv")
    assert r.returncode != 0 and "no trained model is installed" in r.stderr


def test_bench_prints_json_with_rtf():
    r = cli("bench", "--seconds", "3")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("rtf", "peak_rss_mb", "audio_seconds", "frames", "rtf_features", "rtf_model", "rtf_emotion_alone"):
        assert key in d
    assert d["frames"] == 90 and d["rtf"] > 0


def test_help_for_each_command():
    for args in ((), ("infer",), ("bench",)):
        r = cli(*args, "--help")
        assert r.returncode == 0 and "usage" in r.stdout


def test_teach_say_engines_keep_their_names():
    """`teach say --engine` takes espeak (its default), piper, festival and kokoro, as its help says."""
    from a2f_core.__main__ import build_parser

    for engine in ("espeak", "piper", "festival", "kokoro"):
        assert build_parser().parse_args(["teach", "say", "hi", "--engine", engine, "-o", "x"]).engine == engine


def test_build_average_names_a_run_that_is_not_there():
    """`build.py average` refuses, in one line, runs that `build.py train` has not made, before any setup."""
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "average", "no-such-run-a", "no-such-run-b",
                        "--name", "never-written"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (f"error: no trained run no-such-run-a, no-such-run-b in {ROOT / 'out' / 'train'} "
                                "(run build.py train --name first)")
    assert not (ROOT / "out" / "train" / "never-written").exists()
    r = subprocess.run([sys.executable, str(ROOT / "build.py"), "average", "no-such-run-a", "no-such-run-b",
                        "--name", "no-such-run-b"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "is one of the runs it averages" in r.stderr


def test_bench_hours_mode_reports_rss_marks():
    r = cli("bench", "--hours", "0.017")  # one 60 s block
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("rss_mb_at_10pct", "rss_mb_at_50pct", "rss_mb_at_100pct", "rss_growth_10_to_100_mb", "rtf"):
        assert key in d
    assert d["frames"] == 1800


@rows(('a folder or glob of takes with a broken file (`--jobs N`)',
       'one error line for that file; the others are written; exit code 2'))
def test_infer_folder_in_worker_processes_reports_a_broken_file_and_goes_on(wav, checkpoint, speech, tmp_path):
    src = tmp_path / "takes"
    src.mkdir()
    sf.write(src / "a.wav", speech[:20000], 16000)
    sf.write(src / "b.flac", speech[:30000], 16000)
    (src / "c.wav").write_text("not audio")
    (src / "notes.txt").write_text("ignored: not an audio file")
    out = tmp_path / "curves"
    r = cli("infer", src, "-o", out, "--jobs", "2", "--checkpoint", checkpoint, "--no-procedural")
    assert r.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "c.wav" in errors[0] and "Traceback" not in r.stderr
    assert len(list(csv.reader(open(out / "b.csv")))) - 1 == num_frames(30000)
    # a glob gives the same files; existing outputs are kept unless --overwrite
    r = cli("infer", str(src / "*.wav"), "-o", out, "--checkpoint", checkpoint, "-q")
    assert r.returncode == 2 and "already exists" in r.stderr
    r = cli("infer", str(src / "[ab].*"), "-o", out, "--checkpoint", checkpoint, "--overwrite", "-q",
            "--format", "json")
    assert r.returncode == 0, r.stderr
    assert (out / "a.json").exists() and (out / "b.json").exists()


@rows(('a folder without audio files, or a file name as the output of a folder',
       '`error: <folder>: no audio files found (...)` / `give an output folder, not a file`'))
def test_infer_empty_folder_is_one_line_error(tmp_path):
    r = cli("infer", tmp_path, "-o", tmp_path / "out")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "no audio files" in r.stderr
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    r = cli("infer", tmp_path, "-o", tmp_path / "curves.csv")      # a folder in, a file name out
    assert r.returncode == 2 and "give an output folder" in r.stderr and not (tmp_path / "curves.csv").exists()
