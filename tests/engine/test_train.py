"""Training: the loss falls, --resume continues exactly, and torchrun with two processes works."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from subprocess import PIPE

import pytest
import torch
from model_fixtures import build_tiny_model, tiny_pairs
from safetensors.torch import load_file, save_file

from engine.model import ModelConfig, Transformer
from engine.tokenizer import Tokenizer
from engine.training.data import collate, encode_pairs, make_batches, read_pairs
from engine.training.train import TrainOptions, batch_loss, noam_lr, train
from engine.translator import Translator

ROOT = Path(__file__).resolve().parents[2]
TINY = ModelConfig(
    d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2, max_positions=64, dropout=0.0
)


@pytest.fixture
def data(tmp_path):
    pairs = tiny_pairs()
    assert len(pairs) == 200
    (tmp_path / "train.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs[:20]), encoding="utf-8")
    return tmp_path


def options(data: Path, **overrides) -> TrainOptions:
    base = TrainOptions(
        train_path=data / "train.tsv",
        dev_path=data / "dev.tsv",
        out_dir=data / "out",
        checkpoint_dir=data / "ck",
        vocab_size=100,
        model=TINY,
        max_tokens=400,
        warmup_steps=10,
        lr_factor=2.0,
        eval_every_steps=1000,
        dev_sentences=20,
        progress=False,
        threads=1,
    )
    return replace(base, **overrides)


def mean_loss(model: Transformer, tokenizer: Tokenizer, data: Path) -> float:

    examples = encode_pairs(tokenizer, read_pairs(data / "train.tsv", 0, 1), 64)
    model.eval()
    with torch.no_grad():
        losses = [float(batch_loss(model, *collate(examples, b), 0.0)) for b in make_batches(examples, 400, 0)]
    return sum(losses) / len(losses)


def test_thirty_steps_lower_the_loss(data):
    from engine.checkpoint import load_model

    progress = train(options(data, max_steps=30))
    assert progress["step"] == 30
    trained = load_model(data / "out", "cpu")
    torch.manual_seed(1)  # train() seeds the same way before building the model
    untrained = Transformer(trained.model.cfg)
    before = mean_loss(untrained, trained.tokenizer, data)
    after = mean_loss(trained.model, trained.tokenizer, data)
    assert after < before - 1.0, (before, after)
    config = json.loads((data / "out" / "config.json").read_text())
    assert config["training"]["step"] == 30 and (data / "out" / "spm.model").exists()


def test_resume_continues_exactly(data, tmp_path):
    from safetensors.torch import load_file

    straight = options(data, max_steps=20, checkpoint_dir=tmp_path / "straight", out_dir=tmp_path / "o1")
    assert train(straight)["step"] == 20

    first = options(data, max_steps=10, checkpoint_dir=tmp_path / "split", out_dir=tmp_path / "o2")
    assert train(first)["step"] == 10
    saved = json.loads((tmp_path / "split" / "progress.json").read_text())
    assert saved["step"] == 10
    resumed = train(replace(first, max_steps=20, resume=True))
    assert resumed["step"] == 20
    assert [h["step"] for h in resumed["history"]] == [10, 20]

    a = load_file(tmp_path / "straight" / "state.safetensors")
    b = load_file(tmp_path / "split" / "state.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_noam_schedule_warms_up_then_decays():
    lrs = [noam_lr(s, 256, 1.0, 100) for s in (1, 50, 100, 400)]
    assert lrs[0] < lrs[1] < lrs[2] and lrs[3] == pytest.approx(lrs[2] / 2)


def test_batches_respect_the_token_budget(data):
    from engine.tokenizer import train_sentencepiece

    pairs = read_pairs(data / "train.tsv", 0, 1)
    spm = train_sentencepiece([t for p in pairs for t in p], data / "spm", 100)
    examples = encode_pairs(Tokenizer(spm), pairs, 64)
    batches = make_batches(examples, 300, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    for batch in batches:
        src, tgt = collate(examples, batch)
        assert max(src.size(1), tgt.size(1)) * len(batch) <= 300 or len(batch) == 1


def torchrun(data: Path, processes: int, port: int, *args: str, cpu: bool = True, timeout: float = 300) -> list[int]:
    """Train with ddp_train.py under torchrun; returns each rank's step count, after checking that every
    rank ended with the same weights. `cpu` hides the GPUs (gloo): on a one-GPU machine a second
    process would otherwise ask for cuda:1."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    script = Path(__file__).with_name("ddp_train.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command += ["--master_port", str(port), str(script), str(data), *args]
    with subprocess.Popen(command, cwd=ROOT, env=env, text=True, stdout=PIPE, stderr=PIPE) as run:
        try:
            stdout, stderr = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.terminate()  # torchrun passes SIGTERM on to its ranks (they run in sessions of their own)
            run.communicate(timeout=60)
            pytest.fail(f"torchrun still running after {timeout} s: the ranks are waiting for each other")
    assert run.returncode == 0, stderr[-2000:]
    steps = [int(n) for n in re.findall(r"trained (\d+) steps", stdout)]  # the ranks' lines may interleave
    assert len(steps) == processes, stdout
    rank0 = load_file(str(data / "rank0.safetensors"))
    for rank in range(1, processes):
        other = load_file(str(data / f"rank{rank}.safetensors"))
        assert rank0.keys() == other.keys()
        for name in rank0:
            torch.testing.assert_close(rank0[name], other[name], rtol=0, atol=0, msg=f"rank {rank} differs: {name}")
    assert (data / "ddp-out" / "model.safetensors").exists()
    return steps


@pytest.mark.slow
def test_two_process_torchrun_gloo_keeps_the_ranks_equal(data):
    """Two processes train on different batches; DistributedDataParallel must leave them with one model."""
    assert torchrun(data, 2, 29517) == [4, 4]
    assert json.loads((data / "ddp-ck" / "progress.json").read_text())["step"] == 4


@pytest.mark.slow
def test_ranks_stop_together_when_their_clocks_disagree(data):
    """Under a time budget every rank stops at rank 0's step, though rank 1's clock says it ran out
    long ago: a rank that stopped alone would leave the other waiting in the all-reduce."""
    steps = torchrun(data, 2, 29518, "skewed-budget", timeout=120)
    assert steps[0] == steps[1] > 0
    assert json.loads((data / "ddp-ck" / "progress.json").read_text())["step"] == steps[0]


@pytest.mark.slow
def test_ranks_with_different_batch_counts_take_the_same_steps(data):
    """Rank 1 holds half the sentences, so fewer batches: both ranks take rank 1's count and finish."""
    steps = torchrun(data, 2, 29520, "uneven-data", timeout=120)
    assert steps[0] == steps[1] > 0


def test_the_training_log_draws_as_a_curve(tmp_path):
    from PIL import Image

    from engine.training.curve import save_training_curve
    from engine.training.train import log_csv

    history = [
        {
            "step": s,
            "epoch": 0,
            "elapsed_min": s / 10,
            "lr": "1e-4",
            "train_loss": 3 - s / 1000,
            "dev_bleu": 20 + s / 100,
            "checkpoint": "single",
        }
        for s in (400, 800, 1200)
    ]
    history.append({**history[-1], "dev_bleu": 33.0, "checkpoint": "average of last 3"})
    (tmp_path / "log.csv").write_bytes(log_csv(history))
    path = save_training_curve(tmp_path / "log.csv", tmp_path / "curve.png", "tiny")
    with Image.open(path) as image:
        assert image.size[0] > 500 and len(image.convert("RGB").getcolors(1 << 16)) > 20


def run_engine(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_average_writes_the_mean_of_checkpoints_as_a_model_that_translates(tiny_model_dir, tmp_path):
    other = build_tiny_model(tmp_path / "other", seed=5)
    snapshot = tmp_path / "snapshot.safetensors"
    first, second = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(other / "model.safetensors"))
    save_file({name: 3 * tensor for name, tensor in first.items()}, str(snapshot))
    out = tmp_path / "averaged"
    result = run_engine("average", "--model", tiny_model_dir, "--out", out, tiny_model_dir, other, snapshot)
    assert result.returncode == 0, result.stderr
    averaged = load_file(str(out / "model.safetensors"))
    for name, tensor in first.items():
        torch.testing.assert_close(averaged[name], (tensor + second[name] + 3 * tensor) / 3)
    assert json.loads((out / "config.json").read_text())["averaged"][-1].endswith("snapshot.safetensors")
    assert Translator.from_directory(out, "cpu").translate(["je suis étudiant"])[0]  # it loads and translates


def test_average_refuses_weights_of_another_shape_in_one_line(tiny_model_dir, tmp_path):
    wider = build_tiny_model(tmp_path / "wider", d_ff=48)
    result = run_engine("average", "--model", tiny_model_dir, "--out", tmp_path / "out", tiny_model_dir, wider)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "error: " in result.stderr and "shape" in result.stderr
    assert not (tmp_path / "out").exists()
    missing = run_engine(
        "average", "--model", tiny_model_dir, "--out", tmp_path / "out", tmp_path / "nothing.safetensors"
    )
    assert missing.returncode == 1 and missing.stderr.strip().endswith("nothing.safetensors: no such weights file")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    unwritable = run_engine("average", "--model", tiny_model_dir, "--out", blocked / "out", tiny_model_dir)
    assert unwritable.returncode == 1 and unwritable.stderr.startswith("error: cannot write")


def test_average_of_one_in_float16_halves_the_file_and_keeps_the_translation(tiny_model_dir, tmp_path):
    out = tmp_path / "half"
    result = run_engine("average", "--model", tiny_model_dir, "--out", out, "--float16", tiny_model_dir)
    assert result.returncode == 0, result.stderr
    weights = out / "model.safetensors"
    assert {t.dtype for t in load_file(str(weights)).values()} == {torch.float16}
    assert weights.stat().st_size < 0.6 * (tiny_model_dir / "model.safetensors").stat().st_size
    umask = os.umask(0)
    os.umask(umask)
    assert weights.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by others, as any new file
    sentences = ["je suis étudiant", "le chat dort"]
    assert Translator.from_directory(out, "cpu").translate(sentences) == Translator.from_directory(
        tiny_model_dir, "cpu"
    ).translate(sentences)


def test_a_greedy_soup_averages_only_the_checkpoints_that_help(tiny_model_dir, tmp_path, monkeypatch):
    """Scored by a stand-in for dev BLEU (closeness to the tiny model's weights): of a pair that brackets
    those weights and one far off, the mean keeps the pair and leaves the far one out."""
    import engine.training.train as train_module
    from engine.training.train import SoupTrial, average_models

    target = {name: t.double() for name, t in load_file(str(tiny_model_dir / "model.safetensors")).items()}
    offset = {name: torch.full_like(t, 0.01) for name, t in target.items()}
    paths = {}
    for label, factor in (("above", 1.0), ("below", -1.0), ("far", 5.0)):
        paths[label] = tmp_path / f"{label}.safetensors"
        save_file({n: (t + factor * offset[n]).float() for n, t in target.items()}, str(paths[label]))

    def closeness(model, tokenizer, pairs) -> float:  # the stand-in for dev_bleu
        state = {name: t.detach().double() for name, t in model.state_dict().items()}
        return -sum(float((state[name] - t).abs().sum()) for name, t in target.items() if name in state)

    monkeypatch.setattr(train_module, "dev_bleu", closeness)
    trials: list[SoupTrial] = []
    out = average_models(
        tiny_model_dir,
        [paths["far"], paths["above"], paths["below"]],
        tmp_path / "soup",
        dev_pairs=[("a", "b")],
        report=trials.append,
    )
    assert [(t.name.split("/")[-1], t.kept) for t in trials] == [
        ("above.safetensors", True),  # the best alone (a tie with "below", which comes later)
        ("below.safetensors", True),  # the mean is the target itself: better
        ("far.safetensors", False),  # the mean moves off: left out
    ]
    averaged = load_file(str(out / "model.safetensors"))
    for name, tensor in target.items():
        torch.testing.assert_close(averaged[name].double(), tensor, atol=1e-6, rtol=0)
    assert [p.split("/")[-1] for p in json.loads((out / "config.json").read_text())["averaged"]] == [
        "above.safetensors",
        "below.safetensors",
    ]
