"""Training of one model (the MTL model, or one STL model): epochs, evaluation, checkpoints."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from mtl_split_core.bundle import TaskSpec
from mtl_split_core.dense import postprocess

from .checkpoint import load_checkpoint, save_checkpoint
from .config import RunConfig, TrainConfig
from .datasets import DataSource
from .datasets.torch_dataset import TorchImages, collate
from .entropy_model import symbols
from .distributed import (
    DistContext,
    average_floats,
    average_gradients,
    broadcast_module,
    check_in_sync,
    pick_device,
)
from .errors import TrainingError
from .models import SplitModel, count_parameters, save_model
from .task_losses import task_loss
from .task_metrics import SCORES, meter_for
from .teacher import Distiller, warm_start
from .weighting import make_weighting

EpochCallback = Callable[[list[dict[str, Any]]], None]


@dataclass(frozen=True)
class MemberResult:
    history: list[dict[str, Any]]
    test: dict[str, dict[str, float]]
    train_seconds: float
    edge_params: int
    total_params: int


def _scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig) -> torch.optim.lr_scheduler.LRScheduler:
    t = cfg.train
    if t.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=t.step_size, gamma=t.gamma)
    if t.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t.epochs)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _to(labels: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in labels.items()}


def losses(model: SplitModel, raw: dict[str, dict[str, torch.Tensor]], labels: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every task's loss on the heads' raw outputs (task_losses)."""
    size = model.spec.input_size
    return {t.name: task_loss(t, raw[t.name], labels[t.name], size) for t in model.tasks}


@torch.no_grad()
def evaluate(model: SplitModel, loader: DataLoader, device: torch.device) -> dict[str, dict[str, Any]]:
    """Per task: mean loss and the kind's metrics (task_metrics; `score` is the headline one),
    scored on the post-processed outputs the server publishes."""
    model.eval()
    meters = {t.name: meter_for(t) for t in model.tasks}
    loss_sum = {t.name: 0.0 for t in model.tasks}
    count = 0
    size = model.spec.input_size
    for images, labels in loader:
        images, labels = images.to(device), _to(labels, device)
        shared = model.shared(images)
        for task, loss in losses(model, model.raw(shared), labels).items():
            loss_sum[task] += float(loss) * len(images)
        outputs = {t.name: head(shared).cpu().numpy() for t, head in zip(model.tasks, model.heads)}
        for t in model.tasks:
            out, target = outputs[t.name], labels[t.name]
            for i in range(len(images)):
                if t.kind == "classification":
                    meters[t.name].update(int(np.argmax(out[i])), int(target[i]))
                elif t.kind == "detection":
                    meters[t.name].update(postprocess(t.kind, out[i], (size, size)), target[i], (size, size))
                else:
                    meters[t.name].update(postprocess(t.kind, out[i], (size, size)), target[i].cpu().numpy())
        count += len(images)
    if count == 0:  # run.check_splits refuses empty splits before training; this is the last guard
        raise TrainingError("an evaluation split is empty")
    return {t.name: {"metric": SCORES[t.kind][0], **meters[t.name].result(), "loss": loss_sum[t.name] / count}
            for t in model.tasks}


def score_line(metrics: dict[str, dict[str, Any]]) -> str:
    """`shape accuracy 0.981, depth abs_rel 0.083, ...`: each task's headline metric."""
    return ", ".join(f"{t} {m['metric']} {m['score']:.3f}" for t, m in metrics.items())


def rate_weight(train: TrainConfig, epochs_done: float) -> float:
    """train.rate_lambda, ramped up linearly over train.rate_warmup_epochs: the model first
    learns the tasks through the bottleneck, then to spend fewer bits on them."""
    ramp = min(1.0, epochs_done / train.rate_warmup_epochs) if train.rate_warmup_epochs else 1.0
    return train.rate_lambda * ramp


class MemberTrainer:
    """Trains one SplitModel on the given tasks and writes it to member_dir."""

    def __init__(self, cfg: RunConfig, source: DataSource, tasks: tuple[TaskSpec, ...], member_dir: Path,
                 ctx: DistContext, label: str):
        self.cfg, self.source, self.tasks, self.dir, self.ctx, self.label = cfg, source, tasks, member_dir, ctx, label
        self.device = pick_device(cfg.train.device, ctx)
        torch.manual_seed(cfg.seed)
        self.model = SplitModel(cfg.model_spec(), tasks)
        if cfg.train.init_from:
            copied, fresh = warm_start(self.model, cfg.train.init_from)
            if ctx.is_main:
                tqdm.write(f"[{label}] started from {cfg.train.init_from}: {copied} tensors copied, "
                           f"{fresh} initialized here")
        self.model = self.model.to(self.device)
        self.distiller = None if not cfg.train.distill_from else Distiller(
            cfg.train.distill_from, self.model, cfg.train.distill_weight, cfg.train.distill_temperature,
            cfg.train.distill_features, self.device)
        # One task has nothing to weigh: STL models always train on their plain loss.
        weighting = cfg.train.weighting if len(tasks) > 1 else "sum"
        self.weighting = make_weighting(weighting, [t.name for t in tasks]).to(self.device)
        groups = [{"params": list(self.model.parameters()), "weight_decay": cfg.train.weight_decay}]
        if list(self.weighting.parameters()):
            groups.append({"params": list(self.weighting.parameters()), "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.train.lr)
        self.scheduler = _scheduler(self.optimizer, cfg)
        self.input_spec = cfg.data.input_spec()

    def _loader(self, split: str, train: bool) -> tuple[DataLoader, TorchImages]:
        cfg = self.cfg
        noise = cfg.data.salt_pepper if train else 0.0
        dataset = TorchImages(self.source.split(split), self.input_spec, salt_pepper=noise, seed=cfg.seed)
        if not train:
            return DataLoader(dataset, batch_size=cfg.train.eval_batch_size, num_workers=cfg.data.workers,
                              collate_fn=collate), dataset
        per_rank = max(2, cfg.train.batch_size // self.ctx.world_size)  # batch_size is the global batch
        if len(dataset) < per_rank * self.ctx.world_size:
            raise TrainingError(f"train split has {len(dataset)} images, fewer than one batch of {cfg.train.batch_size}")
        sampler = DistributedSampler(dataset, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                     shuffle=True, seed=cfg.seed, drop_last=True)
        loader = DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, collate_fn=collate,
                            num_workers=cfg.data.workers, persistent_workers=cfg.data.workers > 0)
        return loader, dataset

    def _train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, Any]:
        cfg, model = self.cfg, self.model
        model.train()
        params = list(model.parameters()) + list(self.weighting.parameters())
        sums = {t.name: 0.0 for t in self.tasks}
        bits_sum = 0.0
        batches = len(loader) if cfg.train.max_batches is None else min(len(loader), cfg.train.max_batches)
        bar = tqdm(loader, total=batches, desc=f"{self.label} epoch {epoch + 1}/{cfg.train.epochs}",
                   leave=False, disable=not self.ctx.is_main, dynamic_ncols=True)
        start = time.perf_counter()
        for step, (images, labels) in enumerate(bar):
            if step == batches:
                break
            images = images.to(self.device, non_blocking=True)
            code = model.edge(images)
            shared = model.pyramid(code)
            raw = model.raw(shared)
            task_losses = losses(model, raw, _to(labels, self.device))
            hint = None
            if self.distiller is not None:
                soft, hint = self.distiller.losses(images, shared, raw)
                for task, kl in soft.items():
                    task_losses[task] = task_losses[task] + kl
            self.optimizer.zero_grad(set_to_none=True)
            extra = hint  # losses outside the task weighting: the feature hint and the rate term
            if model.prior is not None:
                # lambda * bits trains the encoder for rate; the detached term fits the prior to
                # the symbols whatever lambda is (its gradient reaches only the prior).
                bits = model.prior.bits(symbols(code))
                rate = rate_weight(cfg.train, epoch + step / batches) * bits + model.prior.bits(symbols(code.detach()))
                extra = rate if extra is None else extra + rate
                bits_sum += float(bits.detach())
            self.weighting.backward(task_losses, shared, model, extra)
            average_gradients(params, self.ctx)
            self.optimizer.step()
            values = {t: float(loss.detach()) for t, loss in task_losses.items()}
            for t, v in values.items():
                sums[t] += v
            bar.set_postfix(loss=f"{sum(values.values()):.3f}")
        seconds = time.perf_counter() - start
        mean = average_floats({t: s / max(1, batches) for t, s in sums.items()}, self.ctx)
        out = {"train_loss_per_task": mean, "train_loss": sum(mean.values()), "train_seconds": seconds,
               "batches": batches}
        if model.prior is not None:
            out["train_bits_per_frame"] = average_floats({"bits": bits_sum / max(1, batches)}, self.ctx)["bits"]
        return out

    def _fit_coding_counts(self, loader: DataLoader) -> None:
        """The entropy tables' statistics, on held-out frames: the symbols, and their changes
        between a frame and the same frame slightly moved (a drifting camera)."""
        self.model.eval().fit_coding_counts((batch.to(self.device) for batch, _ in loader), seed=self.cfg.seed)

    def run(self, resume: bool, on_epoch: EpochCallback | None = None) -> MemberResult:
        cfg, ctx = self.cfg, self.ctx
        self.dir.mkdir(parents=True, exist_ok=True)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if resume:
            meta = load_checkpoint(self.dir, self.model, self.weighting, self.optimizer, self.scheduler)
            if meta is not None:
                start_epoch, history = int(meta["epoch"]), list(meta["history"])
                self.weighting.load_state(meta["weighting"])
        broadcast_module(self.model, ctx)
        broadcast_module(self.weighting, ctx)
        train_loader, train_set = self._loader("train", train=True)
        val_loader, _ = self._loader("val", train=False)
        for epoch in range(start_epoch, cfg.train.epochs):
            train_loader.sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            torch.manual_seed(cfg.seed * 100003 + epoch)  # dropout/noise: same stream after a resume
            lr = self.optimizer.param_groups[0]["lr"]
            weights = self.weighting.weights()
            stats = self._train_epoch(train_loader, epoch)
            self.scheduler.step()
            self.weighting.end_epoch(stats["train_loss_per_task"])
            if ctx.is_main:
                val = evaluate(self.model, val_loader, self.device)
                record = {"epoch": epoch + 1, "lr": lr, "task_weights": weights, **stats,
                          "val_score": {t: v["score"] for t, v in val.items()},
                          "val_loss": {t: v["loss"] for t, v in val.items()}, "val": val}
                history.append(record)
                rate = f", {stats['train_bits_per_frame']:.1f} bits/frame" if "train_bits_per_frame" in stats else ""
                tqdm.write(f"[{self.label}] epoch {epoch + 1}/{cfg.train.epochs}: loss {stats['train_loss']:.3f}{rate}, "
                           f"val {score_line(val)} ({stats['train_seconds']:.0f}s)")
                save_checkpoint(self.dir, self.model, self.weighting, self.optimizer, self.scheduler,
                                epoch + 1, history, self.weighting.state())
                if on_epoch:
                    on_epoch(history)
            ctx.barrier()
        check_in_sync(self.model, ctx)
        test: dict[str, dict[str, float]] = {}
        if ctx.is_main:
            test_loader, _ = self._loader("test", train=False)
            test = evaluate(self.model, test_loader, self.device)
            if self.model.prior is not None:
                self._fit_coding_counts(val_loader)
            save_model(self.model.cpu(), self.dir, self.input_spec, extra={
                "training": cfg.to_dict(), "member": self.label,
                "data": {**cfg.data.options(cfg.seed).__dict__, "spec": cfg.data.spec, "sizes": self.source.sizes},
                "metrics": {"val_score": history[-1]["val_score"] if history else {},
                            "test_score": {t: v["score"] for t, v in test.items()}},
            })
        ctx.barrier()
        return MemberResult(history, test, sum(h["train_seconds"] for h in history),
                            count_parameters(self.model.edge), count_parameters(self.model))
