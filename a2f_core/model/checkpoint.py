"""Checkpoints: weights + config + feature parameters + ARKit names + a format version.

Loaded with ``torch.load(weights_only=True)``: only tensors and plain
containers, never pickled code.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

import torch

from ..arkit import ARKIT_NAMES
from ..errors import CheckpointError, NoModelError
from ..features.emotion import EmotionConfig
from ..features.mel import MelConfig
from .dual_stream import DualStreamModel, ModelConfig

FORMAT = "a2f_core.dual_stream"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = "default.pt"


def save_checkpoint(model: DualStreamModel, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Write ``model`` with everything needed to run it; atomic (temp file + rename)."""
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.cfg.to_dict(),
        "mel_config": MelConfig().to_dict(),
        "emotion_config": EmotionConfig().to_dict(),
        "names": list(ARKIT_NAMES),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    if model.output_map is not None:
        blob["output_map"] = model.output_map.to_dict()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def default_checkpoint_path() -> Path | None:
    """The trained model shipped inside the package, or None if none is installed."""
    ref = resources.files("a2f_core.weights").joinpath(DEFAULT_WEIGHTS)
    return Path(str(ref)) if ref.is_file() else None


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike | None = None) -> DualStreamModel:
    """Load a checkpoint (default: the shipped model) in eval mode.

    Raises :class:`NoModelError` when no path is given and no trained model
    is installed, :class:`CheckpointError` for unreadable or incompatible files.
    """
    shipped = False
    if path is None:
        path = default_checkpoint_path()
        if path is None:
            raise NoModelError("no trained model is installed; pass --checkpoint PATH (a2f_core checkpoint .pt)")
        shipped = True
    path = Path(path)
    if shipped:
        expected = path.with_name(path.name + ".sha256")
        if expected.is_file() and expected.read_text().split()[0] != file_sha256(path):
            raise CheckpointError(f"{path}: the shipped model is damaged (checksum mismatch); reinstall a2f_core")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable a2f_core checkpoint ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an a2f_core checkpoint")
    if blob.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {blob.get('format_version')} is not supported "
                              f"(this a2f_core reads version {FORMAT_VERSION}); update a2f_core or re-export it")
    if list(blob.get("names", [])) != list(ARKIT_NAMES):
        raise CheckpointError(f"{path}: checkpoint outputs are not the 52 ARKit blendshapes in canonical order")
    if blob.get("mel_config") != MelConfig().to_dict() or blob.get("emotion_config") != EmotionConfig().to_dict():
        raise CheckpointError(f"{path}: checkpoint was trained on different feature settings")
    try:
        model = DualStreamModel(ModelConfig(**blob["model_config"]))
        model.load_state_dict(blob["state_dict"])
    except Exception as exc:
        raise CheckpointError(f"{path}: checkpoint weights do not fit the model ({str(exc).splitlines()[0]})") from None
    if "output_map" in blob:
        from ..calibration import OutputMap

        try:
            model.output_map = OutputMap.from_dict(blob["output_map"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: the checkpoint's output map is damaged ({exc})") from None
    model.eval()
    model.checkpoint_path = str(path)
    model.checkpoint_meta = dict(blob.get("meta", {}))
    return model


FEATURE_STATS = ("mel_mean", "mel_std", "emo_mean", "emo_std")


def average_checkpoints(paths: list[str | os.PathLike], weights: list[float] | None = None) -> DualStreamModel:
    """The weighted mean of the weights of fine-tunes of one model (a "model soup").

    Only fine-tunes that share their start point average well, so the checkpoints must share the model
    configuration and the feature statistics (which a fine-tune keeps from its ``--init``); the result's
    ``checkpoint_meta`` names the sources, their sha256 and weights. ``weights`` default to equal; they
    are normalised to sum to 1.
    """
    if len(paths) < 2:
        raise CheckpointError("averaging needs at least two checkpoints")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths) or min(weights) < 0 or sum(weights) <= 0:
        raise CheckpointError(f"need one non-negative weight per checkpoint ({len(paths)}), not {weights}")
    weights = [w / sum(weights) for w in weights]
    models = [load_checkpoint(p) for p in paths]
    first = models[0]
    for m in models[1:]:
        if m.cfg.to_dict() != first.cfg.to_dict():
            raise CheckpointError(f"{m.checkpoint_path}: model configuration differs from {first.checkpoint_path}")
        for b in FEATURE_STATS:
            if not torch.equal(getattr(m, b), getattr(first, b)):
                raise CheckpointError(f"{m.checkpoint_path}: feature statistics differ from {first.checkpoint_path}; "
                                      "only fine-tunes of one model can be averaged")
    states = [m.state_dict() for m in models]
    mean = {}
    for k, v in states[0].items():
        if v.is_floating_point() and k not in FEATURE_STATS:
            mean[k] = sum(w * s[k].double() for w, s in zip(weights, states)).to(v.dtype)
        else:
            mean[k] = v.clone()
    out = DualStreamModel(first.cfg)
    out.load_state_dict(mean)
    out.eval()
    out.checkpoint_meta = {"average": [{"path": m.checkpoint_path, "sha256": file_sha256(m.checkpoint_path),
                                        "weight": round(w, 6), "meta": m.checkpoint_meta}
                                       for m, w in zip(models, weights)]}
    return out
