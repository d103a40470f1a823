"""SequentialTrainer: trains the dual-stream model on ordered stretches of whole files.

Each step takes a stretch of consecutive frames from a file and runs the
model's sequence form over it (every frame's full 8.5 s window, exactly as
inference sees it), then the temporal smoothing through the stretch in
order: the smoothing state starts fresh at each stretch, as
``reset_temporal_state()`` does at each file boundary in inference.

Loss (weights configurable): MSE 1.0 + L1 0.1 + mouth region 0.5 +
expression region 0.5 (extra MSE on those channels, with lip aperture
jawOpen - mouthClose as part of the mouth term) + velocity 0.2 (frame
differences match the target's) + smoothness 0.1 (penalises the
prediction's second difference). Channels a source does not carry are
masked out.
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..arkit import BROWS, CHEEKS_NOSE, EYES, INDEX, MOUTH
from ..features.emotion import align_to_frames
from ..model import DualStreamModel, ModelConfig, save_checkpoint
from .data import CachedFeatures, TrainItem, features_for


@dataclass
class TrainConfig:
    steps: int = 3000
    stretch: int = 96            # output frames per stretch
    batch: int = 4               # stretches per step
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 150
    grad_clip: float = 1.0
    w_mse: float = 1.0
    w_l1: float = 0.1
    w_mouth: float = 0.5
    w_expr: float = 0.5
    w_velocity: float = 0.2
    w_smooth: float = 0.1
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25


MOUTH_IDX = [INDEX[n] for n in MOUTH]
EXPR_IDX = [INDEX[n] for n in EYES + BROWS + CHEEKS_NOSE]


def feature_stats(feats: list[CachedFeatures], cfg: ModelConfig):
    mel = np.concatenate([f.mel[cfg.past: len(f.mel) - cfg.lookahead] for f in feats])
    emo = np.concatenate([f.hop_vals for f in feats])
    return mel.mean(0), mel.std(0) + 1e-3, np.nanmean(emo, 0), np.nanstd(emo, 0) + 1e-6


class SequentialTrainer:
    def __init__(self, items: list[TrainItem], out_dir: str | os.PathLike, cfg: TrainConfig = TrainConfig(),
                 model_cfg: ModelConfig = ModelConfig(), cache_dir: str | os.PathLike | None = None,
                 init: DualStreamModel | None = None, progress: bool = True):
        self.cfg = cfg
        self.items = items
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.model = init if init is not None else DualStreamModel(model_cfg)
        self.mcfg = self.model.cfg
        it = items
        if progress:
            from tqdm import tqdm

            it = tqdm(items, desc="features", unit="file")
        self.feats = [features_for(i.audio, self.mcfg, cache_dir) for i in it]
        if init is None:
            self.model.set_feature_stats(*feature_stats(self.feats, self.mcfg))
        self._emo = []
        with torch.no_grad():
            for f in self.feats:
                z = self.model.normalize_emotion(torch.from_numpy(f.hop_vals)).numpy()
                T = len(f.mel) - self.mcfg.context + 1
                frames = np.arange(-self.mcfg.past, T + self.mcfg.lookahead)
                self._emo.append(align_to_frames(f.hops, z, frames))
        lengths = np.array([min(len(i.target), len(f.mel) - self.mcfg.context + 1)
                            for i, f in zip(items, self.feats)], np.float64)
        p = lengths * np.array([i.weight for i in items])
        self.sample_p = p / p.sum()
        self.lengths = lengths.astype(int)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.progress = progress
        self.log_path = self.out / "train_log.csv"

    # ------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        c = self.cfg
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        frac = (step - c.warmup) / max(1, c.steps - c.warmup)
        return c.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    # ---------------------------------------------------------------- data
    def sample_stretch(self):
        k = int(self.rng.choice(len(self.items), p=self.sample_p))
        T = self.lengths[k]
        n = min(self.cfg.stretch, T)
        # dense from file starts sometimes, so the start-of-file state is learned too
        start = 0 if self.rng.random() < 0.1 else int(self.rng.integers(0, T - n + 1))
        f = self.feats[k]
        S = n + self.mcfg.context - 1
        mel = torch.from_numpy(f.mel[start:start + S])
        emo = torch.from_numpy(self._emo[k][start:start + S])
        item = self.items[k]
        tgt = torch.from_numpy(item.target[start:start + n])
        return mel, emo, tgt, torch.from_numpy(item.mask), item.weight

    # ---------------------------------------------------------------- loss
    def smooth(self, raw: torch.Tensor) -> torch.Tensor:
        a = self.model.smoothing_alpha()
        ys = [raw[0]]
        for t in range(1, len(raw)):
            ys.append(a * raw[t] + (1 - a) * ys[-1])
        return torch.stack(ys)

    def loss(self, pred: torch.Tensor, tgt: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict]:
        c = self.cfg
        m = mask[None]
        denom = m.sum() * len(pred) + 1e-6
        err = (pred - tgt) * m
        mse = (err ** 2).sum() / denom
        l1 = err.abs().sum() / denom
        mouth = (err[:, MOUTH_IDX] ** 2).mean()
        if mask[INDEX["mouthClose"]] > 0 and mask[INDEX["jawOpen"]] > 0:
            ap_p = pred[:, INDEX["jawOpen"]] - pred[:, INDEX["mouthClose"]]
            ap_t = tgt[:, INDEX["jawOpen"]] - tgt[:, INDEX["mouthClose"]]
            mouth = mouth + ((ap_p - ap_t) ** 2).mean()
        expr = (err[:, EXPR_IDX] ** 2).mean()
        dv = (pred[1:] - pred[:-1]) - (tgt[1:] - tgt[:-1])
        vel = ((dv * m) ** 2).sum() / denom
        smooth = ((pred[2:] - 2 * pred[1:-1] + pred[:-2]) ** 2).mean()
        total = (c.w_mse * mse + c.w_l1 * l1 + c.w_mouth * mouth + c.w_expr * expr + c.w_velocity * vel
                 + c.w_smooth * smooth)
        return total, {"mse": float(mse.detach()), "mouth": float(mouth.detach()), "vel": float(vel.detach())}

    # ---------------------------------------------------------------- loop
    def train(self) -> DualStreamModel:
        c = self.cfg
        self.model.train()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=c.steps, initial=self.step, desc="train", unit="step")
        new_log = not self.log_path.exists()
        logf = open(self.log_path, "a", newline="")
        log = csv.writer(logf)
        if new_log:
            log.writerow(["step", "lr", "loss", "mse", "mouth", "vel", "seconds"])
        t0 = time.time()
        acc = {"loss": 0.0, "mse": 0.0, "mouth": 0.0, "vel": 0.0}
        while self.step < c.steps:
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(self.step)
            self.opt.zero_grad()
            total = 0.0
            for _ in range(c.batch):
                mel, emo, tgt, mask, w = self.sample_stretch()
                mel_n = self.model.normalize_mel(mel)
                raw = self.model.forward_sequence(mel_n, emo)
                pred = self.smooth(raw)
                loss, parts = self.loss(pred, tgt, mask)
                (loss * w / c.batch).backward()
                total += float(loss.detach()) / c.batch
                for k in ("mse", "mouth", "vel"):
                    acc[k] += parts[k] / c.batch
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.opt.step()
            self.step += 1
            acc["loss"] += total
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total:.4f}")
            if self.step % c.log_every == 0:
                n = c.log_every
                log.writerow([self.step, f"{self.lr_at(self.step):.6f}", *(f"{acc[k] / n:.5f}" for k in
                                                                         ("loss", "mse", "mouth", "vel")),
                              f"{time.time() - t0:.1f}"])
                logf.flush()
                acc = dict.fromkeys(acc, 0.0)
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save(self.out / "last.pt")
        logf.close()
        if bar is not None:
            bar.close()
        self.model.eval()
        return self.model

    def save(self, path: Path) -> None:
        save_checkpoint(self.model, path, meta={"step": self.step, "train_config": asdict(self.cfg)})
        torch.save({"step": self.step, "optimizer": self.opt.state_dict(),
                    "rng": self.rng.bit_generator.state["state"]["state"]}, path.with_suffix(".opt.pt"))

    def resume(self, path: Path) -> None:
        """Continue from ``path`` (a checkpoint written by :meth:`save`) and its optimizer state."""
        from ..model import load_checkpoint

        m = load_checkpoint(path)
        self.model.load_state_dict(m.state_dict())
        opt = path.with_suffix(".opt.pt")
        if opt.exists():
            st = torch.load(opt, weights_only=True)
            self.opt.load_state_dict(st["optimizer"])
            self.step = int(st["step"])
