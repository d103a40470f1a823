#!/usr/bin/env python3
"""One entry point: ``python build.py setup | test | demo``.

setup  creates .venv and installs the pinned dependencies and a2f_core (editable)
test   setup, then the test suite (pytest)
demo   setup, then bakes the bundled speech clip to curves + a plot in out/demo/
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".a2f_setup_stamp"
LOCK = ROOT / "requirements.lock.txt"


def run(cmd: list, **kw) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kw)


def _fingerprint() -> str:
    h = hashlib.sha256()
    for p in (LOCK, ROOT / "pyproject.toml"):
        h.update(p.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def setup() -> int:
    if sys.version_info[:2] != (3, 11):
        print(f"note: pins are checked on Python 3.11; this is {sys.version.split()[0]}", flush=True)
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return 0
    pip = [PY, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # torch first, alone: its CPU wheel is taken as pinned, never a CUDA build pulled by a range
    for step in ([*pip, "--upgrade", "pip"],
                 [*pip, "torch==2.13.0"],
                 [*pip, "-r", LOCK],
                 [*pip, "--no-deps", "-e", "."]):
        rc = run(step)
        if rc:
            print("error: dependency installation failed (see above)", file=sys.stderr)
            return rc
    STAMP.write_text(_fingerprint())
    return 0


def test(extra: list[str]) -> int:
    rc = setup()
    if rc:
        return rc
    rc = run([PY, "-m", "pytest", *extra])
    if rc == 5:
        print("error: pytest collected no tests", file=sys.stderr)
        return 1
    return rc


def demo() -> int:
    rc = setup()
    if rc:
        return rc
    return run([PY, "-m", "a2f_core.demo", "--out", ROOT / "out" / "demo"])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "setup":
        return setup()
    if cmd == "test":
        return test(rest)
    if cmd == "demo":
        return demo()
    print(f"unknown command {cmd!r}; use setup, test or demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
