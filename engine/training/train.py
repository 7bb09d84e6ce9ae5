"""Training: SentencePiece vocabulary, token-count batches, Adam(W) with the paper's warm-up schedule
or a cosine decay, label smoothing, subword sampling, periodic dev BLEU, checkpoint averaging,
resumable checkpoints, optional bf16 autocast and DDP under torchrun.

The shipped model directory (`--out`) always holds the best model by dev BLEU so far (a single
checkpoint or the average of the last few); the resumable training state (weights, Adam moments,
progress, the snapshots to average) lives in `--checkpoint-dir`, as safetensors + JSON, and the
log of every evaluation as log.csv there and beside the model.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from engine.checkpoint import (
    WEIGHTS_FILE,
    ModelInfo,
    ModelLoadError,
    build_for_weights,
    load_model,
    load_weights,
    save_model,
    unique_state,
)
from engine.files import write_atomic
from engine.generation import our_rules
from engine.model import ModelConfig, Transformer
from engine.tokenizer import PAD_ID, Tokenizer, train_sentencepiece
from engine.training.data import collate, encode_pairs, make_batches, read_pairs
from engine.translator import translate_batch

log = logging.getLogger(__name__)
TOKENIZER_FILE = "spm.model"


@dataclass(frozen=True)
class TrainOptions:
    # data
    train_path: Path
    dev_path: Path
    out_dir: Path
    checkpoint_dir: Path
    source_column: int = 0
    target_column: int = 1
    source_language: str = "fr"
    target_language: str = "en"
    spm_model: Path | None = None  # reuse this SentencePiece model instead of training one
    vocab_size: int = 8000
    spm_alpha: float = 0.0  # > 0: SentencePiece sampling (Kudo 2018), re-encoded every epoch
    init_from: Path | None = None  # start from this model directory's weights and tokenizer, fresh optimiser
    # model
    model: ModelConfig = ModelConfig(d_model=256, d_ff=1024, n_heads=8, n_encoder_layers=3, n_decoder_layers=3)
    # optimisation
    max_tokens: int = 3000  # per batch, counting the longer side × sentences
    lr_schedule: Literal["noam", "cosine"] = "noam"
    lr_factor: float = 1.0  # noam: multiplies the paper's schedule
    peak_lr: float = 5e-4  # cosine: the rate after warm-up, decayed to 0 over max_steps or the time budget
    warmup_steps: int = 1000
    weight_decay: float = 0.0  # decoupled (AdamW)
    label_smoothing: float = 0.1
    clip_norm: float = 1.0
    bf16: bool = False
    seed: int = 1
    # stopping and bookkeeping
    max_steps: int | None = None
    epochs: int | None = None
    time_budget_minutes: float | None = None
    eval_every_steps: int = 1000
    dev_sentences: int = 300
    checkpoint_minutes: float = 5.0
    average_last: int = 0  # > 1: also try the average of the last N evaluated checkpoints
    resume: bool = False
    threads: int | None = None
    progress: bool = True


def batch_loss(
    model: torch.nn.Module, src: torch.Tensor, tgt: torch.Tensor, label_smoothing: float, bf16: bool = False
) -> torch.Tensor:
    """Mean label-smoothed cross-entropy of predicting tgt[:, 1:] from src and tgt[:, :-1]."""
    with torch.autocast(src.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(src, tgt[:, :-1])  # (B, T-1, V)
    return F.cross_entropy(
        logits.float().flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=PAD_ID, label_smoothing=label_smoothing
    )


def noam_lr(step: int, d_model: int, factor: float, warmup: int) -> float:
    """The paper's schedule: d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), times `factor`."""
    step = max(step, 1)
    return factor * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


def cosine_lr(step: int, fraction_done: float, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then half a cosine down to 0 as `fraction_done` goes from 0 to 1."""
    ramp = min(1.0, step / max(warmup, 1))
    return peak * ramp * 0.5 * (1.0 + math.cos(math.pi * min(max(fraction_done, 0.0), 1.0)))


def average_state(states: Iterable[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of weights (Popel & Bojar 2018: averaging the last checkpoints), read
    one state at a time."""
    total: dict[str, torch.Tensor] = {}
    count = 0
    for state in states:
        count += 1
        for name, tensor in state.items():
            total[name] = total.get(name, 0) + tensor.double()
    return {name: (tensor / count).float() for name, tensor in total.items()}


def average_models(
    directory: Path,
    weights: list[Path],
    out_dir: Path,
    dtype: torch.dtype = torch.float32,
    dev_pairs: list[tuple[str, str]] | None = None,
    report: Callable[[SoupTrial], None] | None = None,
) -> Path:
    """Write to `out_dir` the model of `directory` (one of ours) with the element-wise mean of
    `weights` (model directories or weight files of the same shapes, e.g. the snapshots of several
    rounds of training), stored as `dtype`; each is checked as a model's own weights are. The mean
    of one is a copy (in float16: half the size). With `dev_pairs`, only the checkpoints a greedy
    soup keeps are averaged (`greedy_soup`; each trial goes to `report`). Returns `out_dir`."""
    loaded = load_model(directory, "cpu")
    files = [path / WEIGHTS_FILE if path.is_dir() else path for path in weights]
    for path in files:
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such weights file")

    def checked(path: Path) -> dict[str, torch.Tensor]:
        """The file's weights, read through the loader: names, shapes and values checked."""
        model = build_for_weights(loaded.model.cfg, path)
        load_weights(model, path)
        return unique_state(model)

    if dev_pairs is None:
        state = average_state(checked(path) for path in files)
    else:
        states = [checked(path) for path in files]
        names = ["/".join(path.parts[-3:]) for path in files]
        kept = greedy_soup(loaded.model, loaded.tokenizer, states, names, dev_pairs, report or (lambda trial: None))
        files = [files[i] for i in kept]
        state = average_state(states[i] for i in kept)
    with torch.no_grad():
        for name, target in unique_state(loaded.model).items():
            target.copy_(state[name])
    info = replace(loaded.info, name=out_dir.name)
    averaged = ["/".join(path.parts[-3:]) for path in files]  # where each came from, without the home folder
    save_model(loaded.model, out_dir, info, extra={"averaged": averaged}, dtype=dtype)
    for file_name in {info.source_tokenizer, info.target_tokenizer}:
        shutil.copyfile(directory / file_name, out_dir / file_name)
    return out_dir


@dataclass(frozen=True)
class SoupTrial:
    name: str  # the checkpoint tried
    alone: float  # its own dev BLEU
    mean: float  # dev BLEU of the mean with it added (its own for the first)
    kept: bool


def greedy_soup(
    model: Transformer,
    tokenizer: Tokenizer,
    states: list[dict[str, torch.Tensor]],
    names: list[str],
    dev_pairs: list[tuple[str, str]],
    report: Callable[[SoupTrial], None],
) -> list[int]:
    """The checkpoints worth averaging, by the greedy soup of Wortsman et al. 2022 ("Model soups"):
    rank them by their own dev BLEU, start from the best, and add each next one when the mean's dev
    BLEU does not drop. Returns the indices kept, best first. `model` is overwritten."""

    def bleu(state: dict[str, torch.Tensor]) -> float:
        with torch.no_grad():
            for name, target in unique_state(model).items():
                target.copy_(state[name])
        return dev_bleu(model, tokenizer, dev_pairs)

    alone = []
    for name, state in zip(names, states, strict=True):
        alone.append(bleu(state))
        log.info("%s alone: dev BLEU %.2f", name, alone[-1])
    order = sorted(range(len(states)), key=lambda i: -alone[i])
    kept, best = [order[0]], alone[order[0]]
    report(SoupTrial(names[order[0]], best, best, True))
    for i in order[1:]:
        mean = bleu(average_state(states[j] for j in [*kept, i]))
        if mean >= best:
            kept, best = [*kept, i], mean
        report(SoupTrial(names[i], alone[i], mean, i in kept))
    return kept


LOG_FIELDS = ("step", "epoch", "elapsed_min", "lr", "train_loss", "dev_bleu", "checkpoint")


def log_csv(history: list[dict]) -> bytes:
    """The evaluation history as CSV, one row per evaluation."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LOG_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return out.getvalue().encode()


def dev_bleu(model: Transformer, tokenizer: Tokenizer, pairs: list[tuple[str, str]]) -> float:
    import sacrebleu

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            hypotheses = translate_batch(model, tokenizer, [s for s, _ in pairs])
    finally:
        model.train(was_training)
    return sacrebleu.corpus_bleu(hypotheses, [[t for _, t in pairs]]).score


# --- resumable state: safetensors for tensors, JSON for the rest (never pickle) ---


def save_training_state(directory: Path, model: Transformer, optimizer: torch.optim.Optimizer, progress: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in unique_state(model).items()}
    for i, param in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        state = optimizer.state.get(param)
        if state:
            tensors[f"adam.{i}.exp_avg"] = state["exp_avg"].detach().cpu().contiguous()
            tensors[f"adam.{i}.exp_avg_sq"] = state["exp_avg_sq"].detach().cpu().contiguous()
            progress = {**progress, "adam_step": float(state["step"])}
    tmp = directory / ".state.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / "state.safetensors")
    write_atomic(directory / "progress.json", json.dumps(progress, indent=2).encode())


def load_training_state(directory: Path, model: Transformer, optimizer: torch.optim.Optimizer) -> dict:
    progress = json.loads((directory / "progress.json").read_text())
    tensors = load_file(str(directory / "state.safetensors"))
    with torch.no_grad():
        for name, target in unique_state(model).items():
            target.copy_(tensors[f"model.{name}"])
    for i, param in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        if f"adam.{i}.exp_avg" in tensors:
            optimizer.state[param] = {
                "step": torch.tensor(progress["adam_step"]),
                "exp_avg": tensors[f"adam.{i}.exp_avg"].to(param.device),
                "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"].to(param.device),
            }
    return progress


# --- the loop ---


def prepare_tokenizer(options: TrainOptions, pairs: list[tuple[str, str]], rank: int) -> Path:
    """Train (rank 0) or reuse the joint SentencePiece model; returns its path in the checkpoint dir."""
    path = options.checkpoint_dir / TOKENIZER_FILE
    if rank == 0 and not path.exists():
        options.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if options.init_from is not None:
            shutil.copyfile(load_model(options.init_from, "cpu").tokenizer.src_path, path)
        elif options.spm_model is not None:
            shutil.copyfile(options.spm_model, path)
        else:
            texts = [text for pair in pairs for text in pair]
            train_sentencepiece(texts, options.checkpoint_dir / "spm", options.vocab_size)
    if dist.is_initialized():
        dist.barrier()
    return path


def export_model(model: Transformer, tokenizer_path: Path, options: TrainOptions, extra: dict) -> None:
    info = ModelInfo(
        name=options.out_dir.name,
        source_language=options.source_language,
        target_language=options.target_language,
        source_tokenizer=TOKENIZER_FILE,
        target_tokenizer=TOKENIZER_FILE,
    )
    save_model(model, options.out_dir, info, extra={"training": extra})
    shutil.copyfile(tokenizer_path, options.out_dir / TOKENIZER_FILE)


class Trainer:
    """One training run: data, model, optimiser and progress record; `run()` loops until a stopping rule fires."""

    def __init__(self, options: TrainOptions) -> None:
        self.options = options
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if options.threads:
            torch.set_num_threads(options.threads)
        cuda = torch.cuda.is_available()
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
        torch.manual_seed(options.seed)

        self.pairs = read_pairs(options.train_path, options.source_column, options.target_column)
        self.dev_pairs = read_pairs(options.dev_path, options.source_column, options.target_column)
        self.dev_pairs = self.dev_pairs[: options.dev_sentences]
        self.tokenizer_path = prepare_tokenizer(options, self.pairs, self.rank)
        self.tokenizer = Tokenizer(self.tokenizer_path)
        initial = load_model(options.init_from, "cpu").model if options.init_from is not None else None
        if initial is not None:  # the sizes are the initial model's; only the regularisation is ours
            self.cfg = replace(initial.cfg, dropout=options.model.dropout)
        else:
            self.cfg = replace(
                options.model,
                src_vocab_size=self.tokenizer.src_vocab_size,
                tgt_vocab_size=self.tokenizer.tgt_vocab_size,
            )
        self.examples = encode_pairs(self.tokenizer, self.pairs, self.cfg.max_positions)

        self.rules = our_rules(self.tokenizer.target_pieces(range(self.tokenizer.tgt_vocab_size)))
        self.model = Transformer(self.cfg, self.rules)
        if initial is not None:
            self.model.load_state_dict(initial.state_dict())
        self.model.to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=0.0, betas=(0.9, 0.98), eps=1e-9, weight_decay=options.weight_decay
        )
        self.progress: dict[str, Any] = {
            "step": 0, "epoch": 0, "batch_in_epoch": 0, "elapsed_s": 0.0, "best_bleu": -1.0, "history": [],
            "snapshots": [],
        }  # fmt: skip
        if options.resume and (options.checkpoint_dir / "progress.json").exists():
            self.progress = load_training_state(options.checkpoint_dir, self.model, self.optimizer)
            log.info("resumed at step %d (epoch %d)", self.progress["step"], self.progress["epoch"])
        self.trainable = DistributedDataParallel(self.model) if self.distributed else self.model
        self.started = time.monotonic() - self.progress["elapsed_s"]
        self.clock_s = self.progress["elapsed_s"]  # the shared clock, read before every step
        budget = options.time_budget_minutes
        self.budget_s = budget * 60 if budget else math.inf
        self.bar = None
        if options.progress and self.rank == 0:
            from tqdm import tqdm

            self.bar = tqdm(total=options.max_steps, initial=self.progress["step"], unit="step", dynamic_ncols=True)
        self.window_tokens, self.window_start = 0, time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def shared_elapsed(self) -> float:
        """Rank 0's elapsed seconds on every rank (a broadcast under DDP, so every rank must call it at
        the same point): ranks that read their own clocks would stop at different steps and leave the
        others waiting in the gradients' all-reduce, and set different cosine learning rates."""
        if not self.distributed:
            return self.elapsed()
        clock = torch.tensor([self.elapsed()], dtype=torch.float64, device=self.device)
        dist.broadcast(clock, src=0)
        return float(clock.item())

    def agreed_batch_count(self, count: int) -> int:
        """The fewest batches any rank has this epoch: with subword sampling each rank encodes its own
        segmentations, may drop different over-long sentences, and would otherwise run more steps
        than the others and wait for them in the all-reduce."""
        if not self.distributed:
            return count
        fewest = torch.tensor([count], device=self.device)
        dist.all_reduce(fewest, op=dist.ReduceOp.MIN)
        return int(fewest.item())

    def fraction_done(self) -> float:
        """How far the run is towards its first stopping rule, 0 to 1 (what the cosine decays over)."""
        options, progress = self.options, self.progress
        fractions = [self.clock_s / self.budget_s]
        if options.max_steps:
            fractions.append(progress["step"] / options.max_steps)
        if options.epochs:
            fractions.append(progress["epoch"] / options.epochs)
        return max(fractions)

    def learning_rate(self) -> float:
        options, step = self.options, self.progress["step"] + 1
        if options.lr_schedule == "cosine":
            return cosine_lr(step, self.fraction_done(), options.peak_lr, options.warmup_steps)
        return noam_lr(step, self.cfg.d_model, options.lr_factor, options.warmup_steps)

    def should_stop(self) -> bool:
        """Called before every step on every rank; the time budget is judged by rank 0's clock."""
        options, progress = self.options, self.progress
        self.clock_s = self.shared_elapsed()
        return (
            (options.max_steps is not None and progress["step"] >= options.max_steps)
            or (options.epochs is not None and progress["epoch"] >= options.epochs)
            or self.clock_s >= self.budget_s
        )

    def train_step(self, batch: list[int]) -> None:
        src, tgt = (t.to(self.device) for t in collate(self.examples, batch))
        options = self.options
        lr = self.learning_rate()
        self.progress["last_lr"] = lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss = batch_loss(self.trainable, src, tgt, options.label_smoothing, options.bf16)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), options.clip_norm)
        self.optimizer.step()
        self.progress["step"] += 1
        self.progress["batch_in_epoch"] += 1
        self.progress["last_loss"] = loss.item()
        self.window_tokens += int((tgt[:, 1:] != PAD_ID).sum()) * self.world

    def show_progress(self) -> None:
        if self.bar is None:
            return
        rate = self.window_tokens / max(time.monotonic() - self.window_start, 1e-9)
        left = self.budget_s - self.elapsed()
        self.bar.set_postfix(
            loss=f"{self.progress['last_loss']:.3f}",
            tok_s=f"{rate:.0f}",
            epoch=self.progress["epoch"],
            left=f"{left / 60:.0f}m" if math.isfinite(left) else "-",
        )
        self.bar.update(1)

    def evaluate_and_export(self, model: Transformer | None = None, checkpoint: str = "single") -> None:
        """Dev BLEU of `model` (default: the one training); the model directory is rewritten whenever the
        score is the best so far, and the log whenever anything is evaluated."""
        model = model or self.model
        bleu = dev_bleu(model, self.tokenizer, self.dev_pairs)
        record = {
            "step": self.progress["step"],
            "epoch": self.progress["epoch"],
            "elapsed_min": round(self.elapsed() / 60, 1),
            "lr": f"{self.progress.get('last_lr', 0.0):.3g}",
            "train_loss": round(self.progress.get("last_loss", float("nan")), 4),
            "dev_bleu": round(bleu, 2),
            "checkpoint": checkpoint,
        }
        self.progress["history"].append(record)
        log.info("step %d (%s): dev BLEU %.2f", self.progress["step"], checkpoint, bleu)
        if bleu > self.progress["best_bleu"]:
            self.progress["best_bleu"] = bleu
            extra = {k: record[k] for k in ("step", "dev_bleu", "elapsed_min", "checkpoint")}
            export_model(model, self.tokenizer_path, self.options, extra)
        for directory in (self.options.checkpoint_dir, self.options.out_dir):
            write_atomic(directory / "training_log.csv", log_csv(self.progress["history"]))

    def snapshot(self) -> None:
        """Keep this step's weights for averaging; only the last `average_last` are kept."""
        directory = self.options.checkpoint_dir / "snapshots"
        directory.mkdir(parents=True, exist_ok=True)
        name = f"step-{self.progress['step']:07d}.safetensors"
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in unique_state(self.model).items()}, str(directory / name)
        )
        snapshots = [*self.progress["snapshots"], name]
        for old in snapshots[: -self.options.average_last]:
            (directory / old).unlink(missing_ok=True)
        self.progress["snapshots"] = snapshots[-self.options.average_last :]

    def evaluate_average(self) -> None:
        """Dev BLEU of the mean of the kept snapshots, exported if it beats every single checkpoint."""
        paths = [self.options.checkpoint_dir / "snapshots" / name for name in self.progress["snapshots"]]
        averaged = Transformer(self.cfg, self.rules).to(self.device)
        state = average_state(load_file(str(path)) for path in paths)
        with torch.no_grad():
            for name, target in unique_state(averaged).items():
                target.copy_(state[name])
        self.evaluate_and_export(averaged, f"average of last {len(paths)}")

    def checkpoint(self) -> None:
        self.progress["elapsed_s"] = self.elapsed()
        save_training_state(self.options.checkpoint_dir, self.model, self.optimizer, self.progress)

    def run(self) -> dict:
        options, progress = self.options, self.progress
        self.model.train()
        last_checkpoint = time.monotonic()
        while not self.should_stop():
            if options.spm_alpha > 0:
                self.examples = encode_pairs(self.tokenizer, self.pairs, self.cfg.max_positions, options.spm_alpha)
            batches = make_batches(self.examples, options.max_tokens, options.seed + progress["epoch"])
            batches = batches[: len(batches) - len(batches) % self.world][self.rank :: self.world]  # equal shares
            batches = batches[: self.agreed_batch_count(len(batches))]
            while progress["batch_in_epoch"] < len(batches) and not self.should_stop():
                self.train_step(batches[progress["batch_in_epoch"]])
                self.show_progress()
                if self.rank == 0 and progress["step"] % options.eval_every_steps == 0:
                    self.evaluate_and_export()
                    if options.average_last > 1:
                        self.snapshot()
                if self.rank == 0 and time.monotonic() - last_checkpoint >= options.checkpoint_minutes * 60:
                    self.checkpoint()
                    last_checkpoint = time.monotonic()
            if progress["batch_in_epoch"] >= len(batches):
                progress["epoch"] += 1
                progress["batch_in_epoch"] = 0
        if self.rank == 0:
            if not progress["history"] or progress["history"][-1]["step"] != progress["step"]:
                self.evaluate_and_export()
                if options.average_last > 1:
                    self.snapshot()
            if len(progress["snapshots"]) > 1:
                self.evaluate_average()
            self.checkpoint()
        self.close()
        return progress

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.distributed:
            dist.barrier()
            dist.destroy_process_group()


def train(options: TrainOptions) -> dict:
    """Run training until a stopping rule fires; returns the final progress record."""
    return Trainer(options).run()
