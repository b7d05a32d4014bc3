"""The generic training loop: AdamW (betas as configured), warm-up + cosine with hard restarts
(or warm-up + a constant rate), grad clipping, AMP on CUDA, per-epoch CSV log, best checkpoint on
the validation subject (lowest validation loss, or highest mean SSIM of the model's predictions:
`select_on`), early stopping, and resume from the last epoch's checkpoint after a kill. Every
model trains through here, by the hooks of `models.base.Model` (training_step, after_step,
validation_loss, optimizer_groups, and fit_closed_form for closed-form models): every optimiser
group gets its own AdamW, schedule and gradient clipping, all checkpointed. The data are
single-volume pairs (`PairDataset`) or frame sequences (`SequenceDataset`): anything with
`batches()` whose inputs have `.to(device)` and `len()`."""

from __future__ import annotations

import csv
import io
import math
import pickle
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from eeg2fmri.config import TrainConfig
from eeg2fmri.device import resolve_precision
from eeg2fmri.errors import InputError
from eeg2fmri.io import atomic_path
from eeg2fmri.models.base import Model
from eeg2fmri.pairs import Frames, PairDataset


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_restarts(step: int, total: int, warmup: int, cycles: float) -> float:
    """LR factor: linear warm-up, then cosine decay restarting `cycles` times."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if progress >= 1.0:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * ((cycles * progress) % 1.0)))


def constant_after_warmup(step: int, warmup: int) -> float:
    """LR factor: linear warm-up, then the peak rate for good (no decay)."""
    return (step + 1) / warmup if step < warmup else 1.0


def lr_factor(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    """The LR factor per optimiser step of `cfg.schedule`."""
    if cfg.schedule == "constant":
        return lambda s: constant_after_warmup(s, cfg.warmup_steps)
    cycles = max(1.0, cfg.epochs / cfg.restart_epochs)
    return lambda s: cosine_restarts(s, total, cfg.warmup_steps, cycles)


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


@torch.no_grad()
def evaluate_loss(model: Model, data: Frames, batch_size: int, device: torch.device,
                  ssim_weight: float = 0.5) -> float:
    model.eval()
    total, n = 0.0, 0
    for x, y in data.batches(batch_size):
        x, y = x.to(device), y.to(device)
        loss = model.validation_loss(x, y, ssim_weight=ssim_weight)
        total += float(loss) * len(x)
        n += len(x)
    return total / max(n, 1)


def _ssim2d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """evaluation.metrics.ssim2d: torchmetrics' 2-D SSIM, the D slices as channels."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")


def _ssim3d(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """evaluation.metrics.ssim3d: pytorch-msssim's volumetric SSIM."""
    import warnings

    from pytorch_msssim import ssim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Skipping Gaussian Smoothing" (short axis)
        return ssim(pred.unsqueeze(1), target.unsqueeze(1), data_range=1.0, size_average=False)


def selection_rows(n: int, volumes: int | None) -> np.ndarray:
    """The validation pairs scored for selection: all `n`, or `volumes` of them spread evenly."""
    if volumes is None or volumes >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, volumes).round()).astype(np.int64)


@torch.no_grad()
def evaluate_ssim(model: Model, data: PairDataset, batch_size: int, device: torch.device,
                  volumes: int | None = None, kind: str = "ssim") -> float:
    """Mean SSIM (`ssim`: the reported 2-D SSIM over slices; `ssim3d`: the volumetric one) of
    the model's predictions of the selection rows, as evaluation predicts them (in eval mode: a
    generative model samples, from the same seed each epoch). Volumes whose target is constant
    (SSIM undefined) are left out, as evaluation leaves them out of its mean. The SSIMs are
    evaluation.metrics' ssim2d / ssim3d, called here as they are there (training does not import
    evaluation; tests/test_training.py keeps them equal)."""
    fn = _ssim2d if kind == "ssim" else _ssim3d
    model.eval()
    rows, scores = selection_rows(len(data), volumes), []
    for start in range(0, len(rows), batch_size):
        x, y = data.batch(rows[start:start + batch_size])
        pred = model(x.to(device)).float().cpu()
        flat = y.flatten(1)
        keep = (flat.amax(1) - flat.amin(1)) > 1e-9
        scores.append(fn(pred, y).double()[keep])
    return float(torch.cat(scores).mean()) if scores else math.nan


def fit(model: Model, train: Frames, val: Frames, cfg: TrainConfig, *,
        checkpoint_dir: Path, log_path: Path, device: torch.device, fingerprint: str = "",
        stop_after_epoch: int | None = None, progress: bool = True, label: str = ""
        ) -> dict[str, Any]:
    """Train `model`; returns the best state (by validation loss, or by the validation SSIM of
    its predictions with `cfg.select_on`) and a summary. Each epoch prints one line (prefixed
    with `label`, e.g. the model and fold).

    A checkpoint is written to `checkpoint_dir/last.pt` after every epoch and picked up on the
    next call with the same `fingerprint`, so a killed job resumes where it stopped.
    `stop_after_epoch` ends the call early (as a kill would) for tests.
    """
    model.to(device)
    if model.kind == "closed_form":
        model.fit_closed_form(train.batches(cfg.batch_size))
        val_loss = evaluate_loss(model, val, cfg.batch_size, device, cfg.ssim_weight)
        _write_log(log_path, [{"epoch": 0, "train_loss": math.nan, "val_loss": val_loss,
                               "lr": 0.0, "seconds": 0.0, "best": 1}])
        return {"best_state": model.state_dict(), "best_epoch": 0, "epochs_run": 0,
                "best_val_loss": val_loss, "select_on": None}  # nothing to select
    by_ssim = cfg.select_on != "loss"
    if by_ssim and not isinstance(val, PairDataset):
        raise ValueError(f"training.select_on: {cfg.select_on} scores single-volume "
                         f"predictions; {type(model).__name__} is a {model.kind} model: select it "
                         "on its loss")
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    groups = model.optimizer_groups()
    opts = {n: torch.optim.AdamW(p, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                 weight_decay=cfg.weight_decay)
            for n, p in groups.items()}
    factor = lr_factor(cfg, total_steps)
    scheds = {n: torch.optim.lr_scheduler.LambdaLR(o, factor) for n, o in opts.items()}
    amp_dtype, precision = resolve_precision(cfg.amp, device)
    use_amp = amp_dtype is not None
    scalers = {n: torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
               for n in opts}
    def step(name: str, loss: torch.Tensor) -> None:
        opt, scaler = opts[name], scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(groups[name], cfg.grad_clip)
        scaler.step(opt)
        scaler.update()

    ckpt = checkpoint_dir / "last.pt"
    start, best_val, best_epoch, best_state, rows = 1, math.inf, 0, None, []
    fit_t0, before = time.time(), 0.0  # before: seconds the killed attempts spent
    if ckpt.is_file():
        state = load_checkpoint(ckpt, device)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            for n in opts:
                opts[n].load_state_dict(state["optimizer"][n])
                scheds[n].load_state_dict(state["scheduler"][n])
                scalers[n].load_state_dict(state["scaler"][n])
            torch.set_rng_state(state["rng_cpu"].cpu())
            start, best_val, best_epoch = state["epoch"] + 1, state["best_val"], state["best_epoch"]
            best_state, rows = state["best_state"], state["rows"]
            before = float(state.get("wall_s", 0.0))
            print(f"resuming from {ckpt} at epoch {start}", flush=True)
    bad_epochs = sum(1 for r in rows if r["epoch"] > best_epoch)

    for epoch in range(start, cfg.epochs + 1):
        if cfg.patience and bad_epochs >= cfg.patience:
            break
        t0 = time.time()
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        running, seen = 0.0, 0
        bar = tqdm(train.batches(cfg.batch_size, gen), total=steps_per_epoch, leave=False,
                   desc=f"epoch {epoch}/{cfg.epochs}", mininterval=2.0,
                   disable=not (progress and sys.stderr.isatty()))  # logs get one line per epoch
        for x, y in bar:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = model.training_step(x, y, step, ssim_weight=cfg.ssim_weight)
            for sched in scheds.values():
                sched.step()
            model.after_step()
            running += float(loss.detach()) * len(x)
            seen += len(x)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        val_loss = evaluate_loss(model, val, cfg.batch_size, device, cfg.ssim_weight)
        score = {}
        if by_ssim:  # best_val holds -SSIM: lower is better either way
            score = {f"val_{cfg.select_on}": evaluate_ssim(model, val, cfg.batch_size, device,
                                                           cfg.select_volumes, cfg.select_on)}
        criterion = -score[f"val_{cfg.select_on}"] if by_ssim else val_loss
        improved = criterion < best_val
        if improved:
            best_val, best_epoch = criterion, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bad_epochs = 0 if improved else bad_epochs + 1
        lr = next(iter(scheds.values())).get_last_lr()[0]
        rows.append({"epoch": epoch, "train_loss": running / seen, "val_loss": val_loss,
                     **score, "lr": lr, "seconds": time.time() - t0, "best": int(improved)})
        shown = "".join(f"  {k.removeprefix('val_')} {v:.4f}" for k, v in score.items())
        print(f"{label + ' ' if label else ''}epoch {epoch}/{cfg.epochs}: "
              f"train {running / seen:.4f}  val {val_loss:.4f}{shown}"
              f"{'  *' if improved else ''}  ({rows[-1]['seconds']:.1f} s)", flush=True)
        _write_log(log_path, rows)
        _save({"fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
               "optimizer": {n: o.state_dict() for n, o in opts.items()},
               "scheduler": {n: o.state_dict() for n, o in scheds.items()},
               "scaler": {n: o.state_dict() for n, o in scalers.items()},
               "rng_cpu": torch.get_rng_state(),
               "best_val": best_val, "best_epoch": best_epoch, "best_state": best_state,
               "rows": rows, "config": asdict(cfg), "wall_s": before + time.time() - fit_t0},
              ckpt)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return {"interrupted": True}
    selection: dict[str, Any] = {"select_on": cfg.select_on, "best_val_loss": best_val,
                                 "precision": precision}
    if by_ssim:  # the selected epoch's loss and score, and how many volumes were scored
        best = next((r for r in rows if r["epoch"] == best_epoch), {})
        selection.update(best_val_loss=best.get("val_loss", math.nan),
                         best_val_score=best.get(f"val_{cfg.select_on}", math.nan),
                         select_volumes=len(selection_rows(len(val), cfg.select_volumes)))
    return {"best_state": best_state, "best_epoch": best_epoch, **selection,
            "epochs_run": len(rows), "final_state": model.state_dict(), "resumed_wall_s": before}


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """A resume checkpoint, loaded without running code from the file (a crafted or foreign
    file is refused with one line; a truncated one is ignored and training starts over)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(path, f"refused: loading this checkpoint would run code from the file "
                               f"({str(e).strip().splitlines()[0][:160] if str(e) else ''}); "
                               "delete it to start training over") from None
    except (EOFError, RuntimeError) as e:
        print(f"{path}: unreadable checkpoint ignored ({type(e).__name__})", flush=True)
        return {}


def clear_checkpoint(checkpoint_dir: Path) -> None:
    """Remove the resume state (the folder, with any temporary file a kill left) once the final
    model has been written."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
