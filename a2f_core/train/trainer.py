"""SequentialTrainer: trains the dual-stream model on ordered stretches of whole files.

Each step takes a batch of stretches of consecutive frames, each from one
file, and runs the model's sequence form over them (every frame's full
8.5 s window, exactly as inference sees it), then the temporal smoothing
through each stretch in order: the smoothing state starts fresh at each
stretch, as ``reset_temporal_state()`` does at each file boundary in
inference. Stretches shorter than the batch's length (short files) are
padded and the padding is masked out of every loss term.

Loss (weights configurable): MSE 1.0 + L1 0.1 + mouth region 0.5 +
expression region 0.5 (extra MSE on those channels, with lip aperture
jawOpen - mouthClose as part of the mouth term) + velocity 0.2 (frame
differences match the target's) + smoothness 0.1 (penalises the
prediction's second difference) + extremes 0 (off by default: the aperture
error averaged over closed frames and over wide-open frames separately,
so those rare frames weigh as much as all the others) + aperture L1 0 (off by default: the absolute
lip-aperture error, which pulls an unsure aperture to the median of what the audio allows rather than
the mean, as the L1 term does for the channels) + seal 0 (off by default: on every frame of a p/b/m,
the lowest predicted aperture within ``seal_tolerance`` frames, squared where it is above
``seal_level``; it asks for a closure near each bilabial, not on its exact frames, so it holds on
items whose phone timings are an alignment's, and it reaches frames ``frame_weight`` leaves out) + step 0
(off by default: every mouth channel's frame-to-frame step beyond ``step_cap``, squared and averaged over
those steps alone, so however rare they are they weigh as one term; on every frame, supervised or not). Channels a source does not carry are
masked out. ``spec_aug``: the share of stretches whose log-mel is given a random microphone colour
and speaker size (:mod:`.specaug`) as they are sampled.

Runs on CPU or CUDA (``device``), with bfloat16 autocast for the decoder
(``amp``; the attention sums stay float32), and under ``torchrun`` with
DistributedDataParallel (gloo on CPU, nccl on CUDA): each rank samples from
its own shard of the files (every ``world``-th file, as DistributedSampler
deals them), gradients are averaged, rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import csv
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..arkit import ARKIT_NAMES, BROWS, CHEEKS_NOSE, EYES, INDEX, MOUTH
from ..calibration import DEAD_SHARE, DEAD_USED, dead_outputs
from ..features.emotion import align_to_frames
from ..model import DualStreamModel, ModelConfig, save_checkpoint
from .data import CachedFeatures, TrainItem, fill_cache
from .specaug import augment_mel


@dataclass
class TrainConfig:
    steps: int = 3000
    stretch: int = 96            # output frames per stretch
    batch: int = 4               # stretches per step (per rank)
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
    w_extremes: float = 0.0      # lip aperture error on closed and on wide-open frames, each class averaged alone
    w_aperture_l1: float = 0.0   # absolute lip aperture error (the mouth term has its square)
    w_floor: float = 0.0         # mouth outputs pushed under FLOOR: squared log-space shortfall (keeps gradients alive)
    w_close_rest: float = 0.0    # mouthClose's squared error where the teacher's is down (<= SEALED), averaged per frame
    w_seal: float = 0.0          # each p/b/m frame: the lowest aperture within seal_tolerance frames above seal_level
    seal_tolerance: int = 2      # ... frames either side (a forced alignment times a closure a frame or two off)
    seal_level: float = 0.05     # ... the aperture counted as sealed (eval's closure level is 0.10)
    w_step: float = 0.0          # mouth frame steps above step_cap: squared excess, averaged over those steps alone
    step_cap: float = 0.3        # ... (QUALITY.md: no mouth step over 0.35)
    spec_aug: float = 0.0        # share of stretches whose log-mel gets a random channel colour and speaker size
    revive: bool = False         # re-initialise the output rows of blendshapes an --init no longer produces
    revive_from: str = ""        # ... and give them this live blendshape's query (attention, stream mix, smoothing)
    revive_no_l1: bool = False   # ... and leave them out of the L1 term (its median is 0 for a channel up 1 frame in 10)
    aperture_lips: bool = False  # the lip aperture terms move mouthClose only; jawOpen follows its own targets
    aperture_split: bool = False  # ... only where the teacher seals with mouthClose (both channels elsewhere)
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25
    device: str = "cpu"          # "cpu", "cuda", "cuda:1", or "auto"
    amp: bool = False            # bfloat16 autocast for the decoder


MOUTH_IDX = [INDEX[n] for n in MOUTH]
EXPR_IDX = [INDEX[n] for n in EYES + BROWS + CHEEKS_NOSE]
JAW, CLOSE = INDEX["jawOpen"], INDEX["mouthClose"]
# the floor term's level: sigmoid outputs under it (logits under -4.6) start to lose their gradient
FLOOR = 0.01
# the teacher's mouthClose above this: the lips seal (or nearly) with the jaw a little open
SEALED = 0.02


def feature_stats(feats: list[CachedFeatures], cfg: ModelConfig):
    mel = np.concatenate([f.mel[cfg.past: len(f.mel) - cfg.lookahead] for f in feats])
    emo = np.concatenate([f.hop_vals for f in feats])
    return mel.mean(0), mel.std(0) + 1e-3, np.nanmean(emo, 0), np.nanstd(emo, 0) + 1e-6


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _Sequence(nn.Module):
    """The training forward (sequence form + smoothing) as one module, so DDP can wrap it."""

    def __init__(self, model: DualStreamModel):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor, emo: torch.Tensor) -> torch.Tensor:
        raw = self.model.forward_sequence(self.model.normalize_mel(mel), emo)
        return self.model.smooth_sequence(raw)


def _masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (x * w).sum() / (w.sum() + 1e-6)


class SequentialTrainer:
    def __init__(self, items: list[TrainItem], out_dir: str | os.PathLike, cfg: TrainConfig = TrainConfig(),
                 model_cfg: ModelConfig = ModelConfig(), cache_dir: str | os.PathLike | None = None,
                 init: DualStreamModel | None = None, progress: bool = True, jobs: int = 1,
                 provenance: dict | None = None):
        """``provenance``: what the run started from and read (the ``--init`` checkpoint, the data
        sources), stored with every checkpoint beside the train config."""
        import torch.distributed as dist

        self.cfg = cfg
        self.provenance = dict(provenance or {})
        self.distributed = dist.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.device = resolve_device(cfg.device)
        if self.distributed:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            self._owns_group = not dist.is_initialized()
            if self._owns_group:
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
        else:
            self.rank, self.world, self._owns_group = 0, 1, False
        try:
            self._prepare(items, out_dir, model_cfg, cache_dir, init, progress, jobs)
        except BaseException:
            self.close()       # a process group this trainer started must not outlive it
            raise

    def _prepare(self, items, out_dir, model_cfg, cache_dir, init, progress, jobs) -> None:
        """Everything after the process group: shard, features, model, optimizer."""
        import torch.distributed as dist

        cfg = self.cfg
        self.main = self.rank == 0
        self.items = items[self.rank::self.world]
        if not self.items:
            raise ValueError(f"rank {self.rank} of {self.world} has no training files")
        self.out = Path(out_dir)
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng([cfg.seed, self.rank])
        self.model = init if init is not None else DualStreamModel(model_cfg)
        self.model.output_map = None     # an --init's output map was fitted to its weights, not the new ones
        self.mcfg = self.model.cfg
        self.progress = progress and self.main
        self.feats = fill_cache([i.audio for i in self.items], self.mcfg, cache_dir, jobs=jobs,
                                progress=self.progress)
        if init is None:
            self.model.set_feature_stats(*feature_stats(self.feats, self.mcfg))
        if self.distributed:       # one normalisation for all replicas: rank 0's
            for b in (self.model.mel_mean, self.model.mel_std, self.model.emo_mean, self.model.emo_std):
                dist.broadcast(b, 0)
        self._emo = []
        with torch.no_grad():
            for f in self.feats:
                z = self.model.normalize_emotion(torch.from_numpy(f.hop_vals)).numpy()
                T = len(f.mel) - self.mcfg.context + 1
                frames = np.arange(-self.mcfg.past, T + self.mcfg.lookahead)
                self._emo.append(align_to_frames(f.hops, z, frames).astype(np.float32))
        lengths = np.array([min(len(i.target), len(f.mel) - self.mcfg.context + 1)
                            for i, f in zip(self.items, self.feats)], np.float64)
        p = lengths * np.array([i.weight for i in self.items])
        self.sample_p = p / p.sum()
        self.lengths = lengths.astype(int)
        self.model.to(self.device)
        self.net = _Sequence(self.model)
        self.l1_channels = torch.ones(52, device=self.device)     # channels the L1 term weighs
        if cfg.revive:
            self.provenance["revived"] = self.revive_dead()
            if cfg.revive_no_l1:
                self.l1_channels[[INDEX[n] for n in self.provenance["revived"]]] = 0.0
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # key biases cancel in the softmax (see the model's docstring): they never get gradients
            self.net = DistributedDataParallel(self.net, device_ids=[self.device] if self.device.type == "cuda"
                                               else None, find_unused_parameters=True)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.step = 0
        self.log_path = self.out / "train_log.csv"

    def revive_dead(self, n_items: int = 48, share: float = DEAD_SHARE, used: float = DEAD_USED) -> list[str]:
        """Re-initialise the decoder row of every blendshape the model no longer produces although its
        targets use it; returns their names.

        The output is a sigmoid: a channel whose targets are 0 on most frames (mouthClose, mouthPress,
        mouthRollLower are up only around p/b/m) can be pushed so far below 0 (logits -10 to -14) that its
        gradient vanishes and it stays 0 for good, and the lips can then seal only by dropping the jaw. A
        dead channel is one whose 99th percentile, on ``n_items`` files spread evenly over the training
        set, is under ``share`` of its target's while that is over ``used``; its row gets small random
        weights (seeded by the run's seed; under torchrun every replica takes rank 0's when DDP starts)
        and a bias that outputs that mean target, from where the gradient flows again. With
        ``revive_from`` (a live blendshape, e.g. jawOpen) a revived channel also takes that one's query,
        band and stream mix and smoothing, so its decoder row starts reading features that already
        follow the phones (a dead channel's own query stopped learning when its output died).
        """
        L, c = self.mcfg.context, self.cfg
        preds, tgts, ws = [], [], []
        self.model.eval()
        with torch.no_grad():
            for k in np.unique(np.linspace(0, len(self.items) - 1, min(n_items, len(self.items))).astype(int)):
                f, item = self.feats[k], self.items[k]
                n = int(min(self.lengths[k], 4 * c.stretch))
                mel = torch.from_numpy(np.ascontiguousarray(f.mel[None, :n + L - 1])).to(self.device)
                emo = torch.from_numpy(np.ascontiguousarray(self._emo[k][None, :n + L - 1])).to(self.device)
                preds.append(self.net(mel, emo)[0].float().cpu().numpy())
                tgts.append(item.target[:n])
                ws.append(np.broadcast_to(item.mask, (n, 52)) * (1.0 if item.frame_weight is None
                                                                 else item.frame_weight[:n, None]))
        self.model.train()
        pred, tgt, w = (np.concatenate(a) for a in (preds, tgts, ws))
        on = w > 0
        dead = dead_outputs(pred, tgt, on, share, used)
        if dead:
            g = torch.Generator().manual_seed(c.seed)
            m = self.model
            W, b = m.dec2.weight, m.dec2.bias
            with torch.no_grad():
                scale = 0.1 * float(W[[i for i in range(52) if i not in dead]].std())
                for i in dead:
                    if c.revive_from:
                        j = INDEX[c.revive_from]
                        for t in (m.queries, m.band_logits, m.stream_logits, m.smoothing_param):
                            t[i] = t[j]
                    W[i] = (torch.randn(W.shape[1], generator=g) * scale).to(W)
                    p = float(np.clip(tgt[on[:, i], i].mean(), 0.01, 0.5))
                    b[i] = math.log(p / (1 - p))
        return [ARKIT_NAMES[i] for i in dead]

    # ------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        c = self.cfg
        if step < c.warmup:
            return c.lr * (step + 1) / c.warmup
        frac = (step - c.warmup) / max(1, c.steps - c.warmup)
        return c.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    # ---------------------------------------------------------------- data
    def sample_batch(self):
        """``batch`` stretches of ``stretch`` frames; shorter files are padded and masked (weights 0)."""
        c, L = self.cfg, self.mcfg.context
        n_out = c.stretch
        S = n_out + L - 1
        mel = np.empty((c.batch, S, self.mcfg.n_mels), np.float32)
        emo = np.empty((c.batch, S, self.mcfg.n_emotion), np.float32)
        tgt = np.zeros((c.batch, n_out, 52), np.float32)
        w = np.zeros((c.batch, n_out, 52), np.float32)
        seal = np.full((c.batch, n_out), -1.0, np.float32)      # 1: a p/b/m frame, 0: other frame, -1: padding
        item_w = np.empty(c.batch, np.float32)
        for b in range(c.batch):
            k = int(self.rng.choice(len(self.items), p=self.sample_p))
            T = self.lengths[k]
            n = min(n_out, T)
            # dense from file starts sometimes, so the start-of-file state is learned too
            start = 0 if self.rng.random() < 0.1 else int(self.rng.integers(0, T - n + 1))
            f, item = self.feats[k], self.items[k]
            m = f.mel[start:start + n + L - 1]
            if c.spec_aug and self.rng.random() < c.spec_aug:
                m = augment_mel(m, self.rng)
            e = self._emo[k][start:start + n + L - 1]
            mel[b, :len(m)], mel[b, len(m):] = m, m[-1]
            emo[b, :len(e)], emo[b, len(e):] = e, e[-1]
            tgt[b, :n] = item.target[start:start + n]
            w[b, :n] = item.mask
            if item.frame_weight is not None:
                w[b, :n] *= item.frame_weight[start:start + n, None]
            seal[b, :n] = 0.0 if item.seal is None else item.seal[start:start + n]
            item_w[b] = item.weight
        t = (torch.from_numpy(x).to(self.device) for x in (mel, emo, tgt, w, item_w, seal))
        return tuple(t)

    # ---------------------------------------------------------------- loss
    def loss(self, pred: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor,
             item_w: torch.Tensor | None = None, seal: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        """pred, tgt, w: (N, T, 52) (w: 1 where supervised); item_w: (N,) per-stretch weights; seal: (N, T),
        1 on p/b/m frames, 0 on the other frames, -1 on padding (``sample_batch``'s)."""
        c = self.cfg
        if pred.dim() == 2:
            pred, tgt, w = pred[None], tgt[None], w[None]
            seal = None if seal is None else seal[None]
        if item_w is not None:
            w = w * item_w[:, None, None]
        err = pred - tgt
        mse = _masked_mean(err ** 2, w)
        # channels out of L1 (revive_no_l1) keep their place in the denominator: the others' weight stays
        l1 = _masked_mean(err.abs() * self.l1_channels, w)
        mouth = _masked_mean(err[..., MOUTH_IDX] ** 2, w[..., MOUTH_IDX])
        wa = torch.minimum(w[..., JAW], w[..., CLOSE])
        tgt_ap = tgt[..., JAW] - tgt[..., CLOSE]
        sealed = tgt[..., CLOSE] > SEALED                                     # the teacher seals with mouthClose
        # aperture_lips: the aperture error reaches mouthClose alone. Otherwise the quickest way to seal the
        # lips is to drop the jaw, and once it does the error is gone and mouthClose never learns (v4's did not)
        jaw, close = pred[..., JAW], pred[..., CLOSE]
        if c.aperture_lips:
            jaw = jaw.detach()
        elif c.aperture_split:
            # aperture_split: where the teacher seals with mouthClose the error moves mouthClose alone, elsewhere
            # both. (Moving jawOpen alone elsewhere ran away: mouthClose rose everywhere, the jaw followed, and
            # by step 250 both sat at 0.8-0.97 on real speech with the aperture between them about right. This
            # form runs away more slowly; w_close_rest bounds it. docs/EXPERIMENTS.md: what the probes did.)
            jaw = torch.where(sealed, jaw.detach(), jaw)
        ap_err = (jaw - close) - tgt_ap
        mouth = mouth + _masked_mean(ap_err ** 2, wa)
        extremes = pred.new_zeros(())
        if c.w_extremes:
            # sealed lips (mouthClose up, aperture ~0: 7 % of teacher frames) and wide openings (30 %):
            # averaged with all the others, their errors teach the model to stay near the mean
            for sel in (sealed & (tgt_ap <= 0.05), tgt_ap >= 0.25):
                extremes = extremes + _masked_mean(ap_err ** 2, wa * sel.to(wa.dtype))
        aperture_l1 = _masked_mean(ap_err.abs(), wa) if c.w_aperture_l1 else pred.new_zeros(())
        floor = pred.new_zeros(())
        if c.w_floor:
            # in log space the shortfall keeps a gradient where the sigmoid's own has vanished (d log s / dz
            # = 1 - s): a channel that MSE and L1 push to 0 on most frames stays where it can still rise
            short = torch.relu(math.log(FLOOR) - torch.log(pred[..., MOUTH_IDX].clamp_min(1e-30)))
            floor = _masked_mean(short ** 2, w[..., MOUTH_IDX])
        close_rest = pred.new_zeros(())
        if c.w_close_rest:
            # averaged over frames, not frames x 52 channels: as strong as the aperture error, so mouthClose cannot
            # sit raised between closures (and an open jaw follow it up) to settle the aperture error elsewhere
            close_rest = _masked_mean(err[..., CLOSE] ** 2, w[..., CLOSE] * (~sealed).to(w.dtype))
        seal_term = pred.new_zeros(())
        if c.w_seal and seal is not None and bool((seal > 0).any()):
            k = c.seal_tolerance
            ap = (pred[..., JAW] - pred[..., CLOSE]).masked_fill(seal < 0, float("inf"))   # padding never the lowest
            lowest = -nn.functional.max_pool1d(-ap[:, None], 2 * k + 1, stride=1, padding=k)[:, 0]
            core = seal > 0
            excess = torch.where(core, torch.relu(lowest - c.seal_level), torch.zeros_like(lowest))
            sw = core.to(pred.dtype) * (1.0 if item_w is None else item_w[:, None])
            seal_term = _masked_mean(excess ** 2, sw)
        step_term = pred.new_zeros(())
        if c.w_step:
            inside = w.amax(-1) > 0 if seal is None else seal >= 0          # frames inside the file
            both = (inside[:, 1:] & inside[:, :-1])[..., None]
            over = torch.relu((pred[:, 1:, MOUTH_IDX] - pred[:, :-1, MOUTH_IDX]).abs() - c.step_cap)
            step_term = _masked_mean(over ** 2, (both & (over > 0)).to(pred.dtype))
        expr = _masked_mean(err[..., EXPR_IDX] ** 2, w[..., EXPR_IDX])
        dv = (pred[:, 1:] - pred[:, :-1]) - (tgt[:, 1:] - tgt[:, :-1])
        vel = _masked_mean(dv ** 2, torch.minimum(w[:, 1:], w[:, :-1]))
        valid = (w.amax(-1, keepdim=True) > 0).to(pred.dtype)                 # frames inside the file
        v2 = valid[:, 2:] * valid[:, 1:-1] * valid[:, :-2]
        smooth = _masked_mean((pred[:, 2:] - 2 * pred[:, 1:-1] + pred[:, :-2]) ** 2, v2.expand(-1, -1, 52))
        total = (c.w_mse * mse + c.w_l1 * l1 + c.w_mouth * mouth + c.w_expr * expr + c.w_velocity * vel
                 + c.w_smooth * smooth + c.w_extremes * extremes + c.w_aperture_l1 * aperture_l1
                 + c.w_floor * floor + c.w_close_rest * close_rest + c.w_seal * seal_term
                 + c.w_step * step_term)
        return total, {"mse": float(mse.detach()), "mouth": float(mouth.detach()), "vel": float(vel.detach())}

    # ---------------------------------------------------------------- loop
    def _autocast(self):
        if not self.cfg.amp:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def train(self) -> DualStreamModel:
        c = self.cfg
        self.model.train()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=c.steps, initial=self.step, desc="train", unit="step")
        logf = log = None
        if self.main:
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
            self.opt.zero_grad(set_to_none=True)
            mel, emo, tgt, w, item_w, seal = self.sample_batch()
            with self._autocast():
                pred = self.net(mel, emo)
            loss, parts = self.loss(pred.float(), tgt, w, item_w, seal)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.opt.step()
            self.step += 1
            acc["loss"] += float(loss.detach())
            for k in ("mse", "mouth", "vel"):
                acc[k] += parts[k]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{acc['loss'] / (self.step % c.log_every or c.log_every):.4f}")
            if self.step % c.log_every == 0:
                if log is not None:
                    n = c.log_every
                    log.writerow([self.step, f"{self.lr_at(self.step):.6f}",
                                  *(f"{acc[k] / n:.5f}" for k in ("loss", "mse", "mouth", "vel")),
                                  f"{time.time() - t0:.1f}"])
                    logf.flush()
                acc = dict.fromkeys(acc, 0.0)
            if self.main and (self.step % c.checkpoint_every == 0 or self.step == c.steps):
                self.save(self.out / "last.pt")
        if logf is not None:
            logf.close()
        if bar is not None:
            bar.close()
        if self.distributed:
            self._report_replicas()
        self.model.eval()
        return self.model

    def close(self) -> None:
        """Tear down the process group this trainer started (a no-op otherwise).

        A gloo process that exits with its group alive can abort ("terminate called without an active
        exception") while the interpreter shuts down, so ``train`` callers under torchrun call this. The
        DDP wrapper goes first: left to the interpreter's shutdown, its reducer (which holds the group)
        still aborted 3 of 30 two-process runs whose features were extracted in the run; 0 of 50 without.
        """
        import gc

        import torch.distributed as dist

        if self._owns_group and dist.is_initialized():
            # drop the DDP wrapper (its reducer holds the group) while the group is still alive
            self.net = getattr(self.net, "module", self.net)
            gc.collect()
            dist.destroy_process_group()
        self._owns_group = False

    def __enter__(self) -> "SequentialTrainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _report_replicas(self) -> None:
        """Largest difference between any replica's parameters and rank 0's, written to OUT/replicas.json."""
        import json

        import torch.distributed as dist

        flat = torch.cat([p.detach().reshape(-1) for p in self.model.parameters()])
        ref = flat.clone()
        dist.broadcast(ref, 0)
        diff = (flat - ref).abs().max().reshape(1)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        if self.main:
            (self.out / "replicas.json").write_text(json.dumps(
                {"world_size": self.world, "steps": self.step, "max_param_diff": float(diff)}))

    def save(self, path: Path) -> None:
        model = self.model
        if self.device.type != "cpu":
            model = DualStreamModel(self.mcfg)
            model.load_state_dict({k: v.cpu() for k, v in self.model.state_dict().items()})
        meta = {"step": self.step, "train_config": asdict(self.cfg), **self.provenance}
        save_checkpoint(model, path, meta=meta)
        torch.save({"step": self.step, "optimizer": self.opt.state_dict(),
                    "rng": self.rng.bit_generator.state["state"]["state"]}, path.with_suffix(".opt.pt"))

    def resume(self, path: Path) -> None:
        """Continue from ``path`` (a checkpoint written by :meth:`save`) and its optimizer state."""
        from ..model import load_checkpoint

        m = load_checkpoint(path)
        self.model.load_state_dict(m.state_dict())
        opt = path.with_suffix(".opt.pt")
        if opt.exists():
            st = torch.load(opt, weights_only=True, map_location=self.device)
            self.opt.load_state_dict(st["optimizer"])
            self.step = int(st["step"])
