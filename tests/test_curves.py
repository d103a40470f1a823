import csv
import json

import numpy as np
import pytest

from a2f_core.arkit import ARKIT_NAMES, canonical_name
from a2f_core.curves import BlendshapeCurves
from a2f_core.errors import OutputError
from tests.troubleshooting import rows


def sample(T=45, fps=30.0):
    rng = np.random.default_rng(0)
    return BlendshapeCurves(rng.random((T, 52)).astype(np.float32), fps)


def test_arkit_names_are_apples_52_in_order():
    assert len(ARKIT_NAMES) == 52 == len(set(ARKIT_NAMES))
    assert ARKIT_NAMES[0] == "eyeBlinkLeft" and ARKIT_NAMES[17] == "jawOpen" and ARKIT_NAMES[-1] == "tongueOut"
    assert canonical_name("JawOpen") == canonical_name("jaw_open") == "jawOpen"


def test_csv_layout(tmp_path):
    c = sample()
    p = c.save(tmp_path / "c.csv")
    rows = list(csv.reader(open(p)))
    assert rows[0] == ["frame", "time", *ARKIT_NAMES]
    assert len(rows) == 46 and rows[2][:2] == ["1", "0.033333"]
    back = BlendshapeCurves.load(p)
    np.testing.assert_allclose(back.values, c.values, atol=1e-6)
    assert back.fps == pytest.approx(30.0)


@pytest.mark.parametrize("ext", ["json", "npz"])
def test_roundtrip(tmp_path, ext):
    c = sample(fps=25.0)
    back = BlendshapeCurves.load(c.save(tmp_path / f"c.{ext}"))
    np.testing.assert_allclose(back.values, c.values, atol=1e-6)
    assert back.fps == 25.0 and back.names == ARKIT_NAMES


def test_livelink_face_csv(tmp_path):
    c = sample(T=70, fps=60.0)
    p = c.save(tmp_path / "take.csv", format="livelink")
    rows = list(csv.reader(open(p)))
    assert rows[0][:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert rows[0][-1] == "RightEyeRoll" and rows[1][1] == "61"
    assert rows[61][0] == "00:00:01:00.000"
    back = BlendshapeCurves.load(p, fps=60)
    np.testing.assert_allclose(back.values, c.values, atol=1e-6)


def test_reads_a_live_link_take_with_its_own_column_order(tmp_path):
    names = ["Timecode", "BlendShapeCount", "JawOpen", "EyeBlinkRight", "HeadYaw"]
    p = tmp_path / "iphone.csv"
    p.write_text(",".join(names) + "\n00:00:00:00.000,61,0.5,0.25,3.0\n00:00:00:01.000,61,0.75,0.0,3.0\n")
    c = BlendshapeCurves.load(p)
    assert c.fps == 60 and len(c) == 2
    assert c.channel("jawOpen").tolist() == [0.5, 0.75]
    assert c.channel("eyeBlinkRight").tolist() == [0.25, 0.0]
    assert c.channel("mouthClose").tolist() == [0.0, 0.0]


@pytest.mark.parametrize("fps", [24, 25, 50, 60, 23.976])
def test_resample_keeps_duration_and_shape(fps):
    t = np.arange(90) / 30
    vals = np.zeros((90, 52), np.float32)
    vals[:, 17] = 0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)
    c = BlendshapeCurves(vals, 30.0).resample(fps)
    assert c.fps == fps and len(c) == int(np.ceil(3.0 * fps - 1e-9))
    tt = np.arange(len(c)) / fps
    expected = 0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * np.minimum(tt, 89 / 30))
    np.testing.assert_allclose(c.channel("jawOpen"), expected, atol=0.01)


@rows(('output folder missing, unknown extension, a folder as the output',
       '`error: ...: output folder does not exist` / `unknown output format` / `is a directory`'))
def test_write_errors_are_clear_and_leave_no_temp_files(tmp_path):
    c = sample()
    with pytest.raises(OutputError, match="unknown output format"):
        c.save(tmp_path / "c.txt")
    with pytest.raises(OutputError, match="does not exist"):
        c.save(tmp_path / "nope" / "c.csv")
    with pytest.raises(OutputError, match="directory"):
        c.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_json_layout(tmp_path):
    c = sample(T=3)
    d = json.loads(c.save(tmp_path / "c.json").read_text())
    assert d["fps"] == 30.0 and d["names"] == list(ARKIT_NAMES) and len(d["frames"]) == 3


@rows(("no write permission on the output", "`error: <path>: no permission to write here`; nothing is left behind"))
def test_no_permission_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import os

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)   # as root, mode bits would not stop the write
    with pytest.raises(OutputError, match="no permission to write here"):
        sample().save(tmp_path / "c.csv")
    assert list(tmp_path.iterdir()) == []
