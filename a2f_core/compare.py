"""``python -m a2f_core compare``: is one model's evaluation better than another's, or is it noise?

The real dev groups are small (41 Japanese bilabials in 9 clips), so a closure or two either way is
within what a different seed gives. This pairs two sets of ``eval`` runs clip by clip (each side one
run per seed; the seeds' figures are averaged per clip first) and, for every group and measure,
reports the difference candidate - reference with a 95 % bootstrap interval over the group's clips
(clips are resampled whole, so a clip's bilabials stay together), and for the closure rate the
bilabials each side closes that the other does not, with an exact two-sided sign test on them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import A2FError
from .eval import MEASURES

MIN_CLIPS = 5   # fewer clips than this: no interval (resampling 2 clips gives 3 distinct means)


def load_run(path: str | Path) -> dict:
    """An ``eval`` result: its ``eval.json``, or a folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise A2FError(f"{path}: no such eval result (give an eval.json or the folder of one)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise A2FError(f"{path}: not an eval.json ({e})") from None
    if not isinstance(run, dict) or not isinstance(run.get("clips"), dict):
        raise A2FError(f"{path}: not an eval.json (no 'clips')")
    return run


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test: the chance of a split at least this uneven if either side were as
    likely to win each discordant pair."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n)


def _side(runs: list[dict], system: str) -> dict:
    """Per clip: the group, each measure averaged over the runs (None where any run lacks it), the
    bilabial count, the mean number closed and, where every run stored them, each bilabial's share
    of runs that closed it."""
    names = set(runs[0]["clips"])
    for run in runs[1:]:
        names &= set(run["clips"])
    out = {}
    for name in sorted(names):
        rows = [run["clips"][name] for run in runs]
        if any(system not in r for r in rows):
            continue
        ms = [r[system] for r in rows]
        clip = {"group": rows[0]["group"]}
        for k in MEASURES:
            vals = [m.get(k) for m in ms]
            clip[k] = None if any(v is None for v in vals) else float(np.mean(vals))
        counts = {m.get("bilabials") for m in ms}
        if len(counts) > 1:
            raise A2FError(f"{name}: {sorted(counts)} bilabials in different runs of one side; the runs used "
                           "different alignments (evaluate them with the same --cache)")
        clip["bilabials"] = counts.pop() or 0
        if clip["closure_rate"] is not None:
            clip["closed"] = clip["closure_rate"] * clip["bilabials"]
        flags = [m.get("closed_each") for m in ms]
        if clip["bilabials"] and all(f is not None and len(f) == clip["bilabials"] for f in flags):
            clip["closed_each"] = np.mean(np.asarray(flags, np.float64), axis=0)
        out[name] = clip
    return out


def compare(base: list[dict], new: list[dict], system: str = "model", groups=None,
            resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Rows (group, measure, clips, base, new, diff, lo, hi[, wins, losses, p]) for every group and
    measure both sides have; ``base`` and ``new`` are lists of ``eval`` results (one per seed)."""
    if not base or not new:
        raise A2FError("compare needs at least one eval result on each side")
    if resamples < 1:
        raise A2FError(f"--resamples {resamples}: give a positive number (2000 is plenty)")
    a, b = _side(base, system), _side(new, system)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise A2FError(f"the two sides share no clip with a {system!r} result")
    for name in shared:
        if a[name]["bilabials"] != b[name]["bilabials"]:
            raise A2FError(f"{name}: {a[name]['bilabials']} bilabials in one side's results, {b[name]['bilabials']} "
                           "in the other's; the runs used different alignments (evaluate them with the same --cache)")
    by_group: dict[str, list[str]] = {}
    for name in shared:
        ga, gb = a[name]["group"], b[name]["group"]
        by_group.setdefault(ga if ga == gb else f"{ga} vs {gb}", []).append(name)
    if groups:
        missing = [g for g in groups if g not in by_group]
        if missing:
            raise A2FError(f"no clips of group(s) {', '.join(missing)}; the groups here: {', '.join(sorted(by_group))}")
        by_group = {g: by_group[g] for g in groups}
    rng = np.random.default_rng(seed)
    rows = []
    for group, names in sorted(by_group.items()):
        for k in MEASURES:
            have = [n for n in names if a[n][k] is not None and b[n][k] is not None]
            if not have:
                continue
            idx = rng.integers(0, len(have), size=(resamples, len(have)))
            if k == "closure_rate":   # pooled over the bilabials, as eval's summary pools it
                nb = np.array([a[n]["bilabials"] for n in have], np.float64)
                ca = np.array([a[n]["closed"] for n in have])
                cb = np.array([b[n]["closed"] for n in have])
                va, vb = ca.sum() / nb.sum(), cb.sum() / nb.sum()
                boot = (cb[idx].sum(1) - ca[idx].sum(1)) / nb[idx].sum(1)   # every clip here has a bilabial
            else:
                xa = np.array([a[n][k] for n in have])
                xb = np.array([b[n][k] for n in have])
                va, vb = float(xa.mean()), float(xb.mean())
                boot = (xb - xa)[idx].mean(1)
            lo, hi = np.percentile(boot, [2.5, 97.5]) if len(have) >= MIN_CLIPS else (None, None)
            row = {"group": group, "measure": k, "clips": len(have), "base": float(va), "new": float(vb),
                   "diff": float(vb - va), "lo": None if lo is None else float(lo),
                   "hi": None if hi is None else float(hi)}
            if k == "closure_rate":
                row["bilabials"] = int(sum(a[n]["bilabials"] for n in have))
                if all("closed_each" in a[n] and "closed_each" in b[n] for n in have):
                    fa = np.concatenate([a[n]["closed_each"] for n in have])
                    fb = np.concatenate([b[n]["closed_each"] for n in have])
                    row["wins"], row["losses"] = int((fb > fa).sum()), int((fa > fb).sum())
                    row["p"] = sign_test(row["wins"], row["losses"])
            rows.append(row)
    return rows


def format_rows(rows: list[dict]) -> str:
    """A markdown table. The interval needs ``MIN_CLIPS`` clips; ``only new / only base`` (bilabials
    closed by one side alone) and ``p`` (the sign test on them) need results that stored each bilabial
    (``eval`` does since this command exists; older eval.json files give the rest)."""
    lines = ["| group | measure | clips | base | new | new - base | 95 % interval | only new / only base | p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        won = f"{r['wins']} / {r['losses']}" if "wins" in r else "-"
        p = f"{r['p']:.2f}" if "p" in r else "-"
        ci = "-" if r["lo"] is None else f"{r['lo']:+.3f} .. {r['hi']:+.3f}"
        lines.append(f"| {r['group']} | {r['measure']} | {r['clips']} | {r['base']:.3f} | {r['new']:.3f} | "
                     f"{r['diff']:+.3f} | {ci} | {won} | {p} |")
    return "\n".join(lines)
