"""`train`: a SentencePiece vocabulary and a model, resumable, from a TSV of sentence pairs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_train_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser("train", help="train a SentencePiece vocabulary and a model")
    p.add_argument("--train", type=Path, required=True, help="TSV of sentence pairs")
    p.add_argument("--dev", type=Path, required=True, help="TSV of held-out pairs for BLEU during training")
    p.add_argument("--out", type=Path, required=True, help="model directory to write (the best model by dev BLEU)")
    p.add_argument("--checkpoint-dir", type=Path, help="resumable training state (default runs/<out name>)")
    p.add_argument("--source-column", type=int, default=0)
    p.add_argument("--target-column", type=int, default=1)
    p.add_argument("--source-lang", default="fr")
    p.add_argument("--target-lang", default="en")
    p.add_argument("--spm", type=Path, help="reuse this SentencePiece model instead of training one")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument(
        "--spm-alpha",
        type=float,
        default=0.0,
        help="SentencePiece sampling α over every segmentation (0: off); 0.5 keeps pieces near their usual "
        "length, 0.1 is nearly uniform and breaks words apart (see the model cards' round 3a)",
    )
    p.add_argument("--init-from", type=Path, help="start from this model directory's weights (fresh optimiser)")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--encoder-layers", type=int, default=3)
    p.add_argument("--decoder-layers", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--norm", choices=["post", "pre"], default="post")
    p.add_argument("--max-tokens", type=int, default=3000, help="tokens per batch")
    p.add_argument("--lr-schedule", choices=["noam", "cosine"], default="noam")
    p.add_argument("--lr-factor", type=float, default=1.0, help="noam: factor on the paper's schedule")
    p.add_argument("--peak-lr", type=float, default=5e-4, help="cosine: rate after warm-up")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--time-budget", type=float, metavar="MINUTES")
    p.add_argument("--eval-every", type=int, default=1000, metavar="STEPS")
    p.add_argument("--dev-sentences", type=int, default=300)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument(
        "--average-last", type=int, default=0, metavar="N", help="also try the mean of the last N checkpoints"
    )
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--no-progress", action="store_true")
    return p


def run_train(args: argparse.Namespace) -> int:
    from engine.model import ModelConfig
    from engine.training.train import TrainOptions, train

    model = ModelConfig(
        d_model=args.d_model,
        d_ff=args.d_ff,
        n_heads=args.heads,
        n_encoder_layers=args.encoder_layers,
        n_decoder_layers=args.decoder_layers,
        dropout=args.dropout,
        norm=args.norm,
    )
    options = TrainOptions(
        train_path=args.train,
        dev_path=args.dev,
        out_dir=args.out,
        checkpoint_dir=args.checkpoint_dir or Path("runs") / args.out.name,
        source_column=args.source_column,
        target_column=args.target_column,
        source_language=args.source_lang,
        target_language=args.target_lang,
        spm_model=args.spm,
        vocab_size=args.vocab_size,
        spm_alpha=args.spm_alpha,
        init_from=args.init_from,
        model=model,
        max_tokens=args.max_tokens,
        lr_schedule=args.lr_schedule,
        lr_factor=args.lr_factor,
        peak_lr=args.peak_lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup,
        label_smoothing=args.label_smoothing,
        bf16=args.bf16,
        seed=args.seed,
        max_steps=args.max_steps,
        epochs=args.epochs,
        time_budget_minutes=args.time_budget,
        eval_every_steps=args.eval_every,
        dev_sentences=args.dev_sentences,
        checkpoint_minutes=args.checkpoint_minutes,
        average_last=args.average_last,
        resume=args.resume,
        threads=args.threads,
        progress=not args.no_progress,
    )
    progress = train(options)
    print(f"trained {progress['step']} steps; best dev BLEU {progress['best_bleu']:.2f}; model in {args.out}")
    return 0


def add_average_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "average", help="a model whose weights are the mean of several checkpoints of it (Popel & Bojar 2018)"
    )
    p.add_argument("weights", type=Path, nargs="+", help="model directories or .safetensors snapshots to average")
    p.add_argument("--model", type=Path, required=True, help="the model directory whose config and tokenizer to use")
    p.add_argument("--out", type=Path, required=True, help="model directory to write")
    p.add_argument("--float16", action="store_true", help="store the weights as float16 (half the file size)")
    p.add_argument(
        "--greedy-dev",
        type=Path,
        help="TSV of held-out pairs: average only what a greedy soup keeps (Wortsman et al. 2022): the checkpoints "
        "ranked by their own dev BLEU, each added when the mean's dev BLEU does not drop",
    )
    p.add_argument("--source-column", type=int, default=0, help="of --greedy-dev")
    p.add_argument("--target-column", type=int, default=1, help="of --greedy-dev")
    p.add_argument("--dev-sentences", type=int, default=1000, help="the first N pairs of --greedy-dev")
    return p


def run_average(args: argparse.Namespace) -> int:
    import torch

    from engine.checkpoint import ModelLoadError
    from engine.training.data import read_pairs
    from engine.training.train import SoupTrial, average_models

    def report(trial: SoupTrial) -> None:
        verdict = "kept" if trial.kept else "left out"
        print(f"{trial.name:<60} alone {trial.alone:6.2f}  mean with it {trial.mean:6.2f}  {verdict}", flush=True)

    try:
        dev = None
        if args.greedy_dev is not None:
            dev = read_pairs(args.greedy_dev, args.source_column, args.target_column)[: args.dev_sentences]
        dtype = torch.float16 if args.float16 else torch.float32
        average_models(args.model, args.weights, args.out, dtype, dev, report)
    except (ModelLoadError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # the output folder cannot be written
        print(f"error: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
        return 1
    kept = len(json.loads((args.out / "config.json").read_text(encoding="utf-8")).get("averaged", args.weights))
    print(f"wrote {args.out}: the mean of {kept} of {len(args.weights)} checkpoints")
    return 0
