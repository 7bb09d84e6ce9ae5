"""Run under torchrun by test_train.py: train a tiny model on DATA, then write this rank's weights to
DATA/rank<N>.safetensors so that the test can check that every rank ended with the same model.

    ddp_train.py DATA                 4 steps
    ddp_train.py DATA skewed-budget   a 2-second time budget, and every rank but 0 reads a clock that
                                      says the budget ran out long ago: the ranks must still agree
    ddp_train.py DATA uneven-data     one epoch, every rank but 0 holding half the sentences (as when
                                      subword sampling drops different ones): the same step count
"""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from engine.checkpoint import unique_state
from engine.model import ModelConfig
from engine.training.train import Trainer, TrainOptions

data = Path(sys.argv[1])
skewed = sys.argv[2:] == ["skewed-budget"]
uneven = sys.argv[2:] == ["uneven-data"]
options = TrainOptions(
    train_path=data / "train.tsv",
    dev_path=data / "dev.tsv",
    out_dir=data / "ddp-out",
    checkpoint_dir=data / "ddp-ck",
    vocab_size=100,
    model=ModelConfig(d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_positions=64),
    max_tokens=400,
    max_steps=None if skewed or uneven else 4,
    epochs=1 if uneven else None,
    time_budget_minutes=2 / 60 if skewed else None,
    lr_schedule="cosine" if skewed else "noam",  # the learning rate follows the clock too
    dev_sentences=5,
    threads=1,
    progress=False,
)
trainer = Trainer(options)
if skewed and trainer.rank != 0:
    trainer.started -= 3600  # this rank's own clock: an hour gone, far past the budget
if uneven and trainer.rank != 0:
    trainer.examples = trainer.examples[: len(trainer.examples) // 2]
progress = trainer.run()
state = {name: tensor.detach().contiguous() for name, tensor in unique_state(trainer.model).items()}
save_file(state, str(data / f"rank{os.environ['RANK']}.safetensors"))
print(f"trained {progress['step']} steps")
