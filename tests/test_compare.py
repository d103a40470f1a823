"""``compare``: paired differences between eval results, with bootstrap intervals and a sign test."""

import json

import pytest

from a2f_core.compare import MIN_CLIPS, compare, format_rows, load_run, sign_test
from a2f_core.errors import A2FError
from a2f_core.eval import MEASURES


def result(closed: dict, group="real_ja", opening=0.15, flags=True):
    """An eval result: clip name -> its bilabials closed (1) or not (0), every clip at ``opening``."""
    clips = {}
    for name, each in closed.items():
        m = {k: None for k in MEASURES}
        m.update(bilabials=len(each), closure_rate=sum(each) / len(each), open_vowel_aperture=opening)
        if flags:
            m["closed_each"] = list(each)
        clips[name] = {"lang": "ja", "group": group, "seconds": 3.0, "model": m}
    return {"clips": clips, "summary": {}}


def row(rows, measure, group="real_ja"):
    (r,) = [r for r in rows if r["measure"] == measure and r["group"] == group]
    return r


def test_sign_test():
    assert sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


def test_the_same_results_differ_by_nothing():
    res = result({f"c{i}": [1, 0, 1] for i in range(8)})
    r = row(compare([res], [res]), "closure_rate")
    assert r["diff"] == r["lo"] == r["hi"] == 0.0 and (r["wins"], r["losses"], r["p"]) == (0, 0, 1.0)
    assert r["clips"] == 8 and r["bilabials"] == 24


def test_a_candidate_that_closes_what_the_reference_missed():
    base = result({f"c{i}": [1, 0, 1, 0] for i in range(10)}, opening=0.15)
    new = result({f"c{i}": [1, 1, 1, 1] for i in range(10)}, opening=0.20)
    rows = compare([base], [new])
    r = row(rows, "closure_rate")
    assert r["base"] == 0.5 and r["new"] == 1.0 and r["diff"] == 0.5 and r["lo"] == r["hi"] == 0.5
    assert (r["wins"], r["losses"]) == (20, 0) and r["p"] < 1e-5
    o = row(rows, "open_vowel_aperture")
    assert o["diff"] == pytest.approx(0.05) and o["lo"] == pytest.approx(0.05)
    # the other way round: the same split, lost
    r = row(compare([new], [base]), "closure_rate")
    assert r["diff"] == -0.5 and (r["wins"], r["losses"]) == (0, 20)


def test_one_clip_alone_is_not_a_sure_difference():
    """The candidate misses both bilabials of one clip of ten: resamples without that clip differ by
    nothing, so the interval reaches 0."""
    base = result({f"c{i}": [1, 1] for i in range(10)})
    new = result({f"c{i}": [0, 0] if i == 0 else [1, 1] for i in range(10)})
    r = row(compare([base], [new]), "closure_rate")
    assert r["diff"] == pytest.approx(-0.1) and r["lo"] < r["diff"] < r["hi"] == 0.0
    assert (r["wins"], r["losses"]) == (0, 2) and r["p"] == 0.5


def test_seeds_are_averaged_per_bilabial():
    base = result({f"c{i}": [0, 0] for i in range(6)})
    new = [result({f"c{i}": [1, 1] for i in range(6)}), result({f"c{i}": [0, 0] for i in range(6)})]
    r = row(compare([base], new), "closure_rate")
    assert r["new"] == 0.5 and r["wins"] == 12 and r["losses"] == 0


def test_older_results_without_each_bilabial_still_compare():
    base = result({f"c{i}": [1, 0] for i in range(6)}, flags=False)
    new = result({f"c{i}": [1, 1] for i in range(6)})
    r = row(compare([base], [new]), "closure_rate")
    assert r["diff"] == 0.5 and "p" not in r and "wins" not in r
    assert "| - |" in format_rows([r])


def test_few_clips_get_no_interval():
    res = result({f"c{i}": [1] for i in range(MIN_CLIPS - 1)})
    r = row(compare([res], [res]), "closure_rate")
    assert r["lo"] is None and r["hi"] is None
    assert " - |" in format_rows([r]).splitlines()[-1]


def test_mismatched_runs_are_refused():
    base = result({"c0": [1, 0], "c1": [1]})
    with pytest.raises(A2FError, match="c0.*different alignments"):
        compare([base], [result({"c0": [1, 0, 1], "c1": [1]})])
    with pytest.raises(A2FError, match="real_zh.*real_ja"):
        compare([base], [base], groups=["real_zh"])
    with pytest.raises(A2FError, match="--resamples 0"):
        compare([base], [base], resamples=0)
    with pytest.raises(A2FError, match="share no clip"):
        compare([base], [result({"other": [1]})])


def test_the_command(tmp_path):
    from tests.test_cli import cli

    a, b = tmp_path / "a", tmp_path / "b.json"
    a.mkdir()
    (a / "eval.json").write_text(json.dumps(result({f"c{i}": [1, 0] for i in range(6)})))
    b.write_text(json.dumps(result({f"c{i}": [1, 1] for i in range(6)})))
    r = cli("compare", a, "--vs", b, "--json", tmp_path / "rows.json")
    assert r.returncode == 0, r.stderr
    assert "| real_ja | closure_rate | 6 | 0.500 | 1.000 | +0.500 |" in r.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert row(rows, "closure_rate")["wins"] == 6
    r = cli("compare", tmp_path / "missing", "--vs", b)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "no such eval result" in r.stderr
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(A2FError, match="not an eval.json"):
        load_run(tmp_path / "bad.json")
