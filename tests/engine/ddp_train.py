"""Run under torchrun by test_train.py: train a tiny model on DATA, then write this rank's weights to
DATA/rank<N>.safetensors so that the test can check that every rank ended with the same model."""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from engine.checkpoint import unique_state
from engine.model import ModelConfig
from engine.training.train import Trainer, TrainOptions

data = Path(sys.argv[1])
options = TrainOptions(
    train_path=data / "train.tsv",
    dev_path=data / "dev.tsv",
    out_dir=data / "ddp-out",
    checkpoint_dir=data / "ddp-ck",
    vocab_size=100,
    model=ModelConfig(d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_positions=64),
    max_tokens=400,
    max_steps=4,
    dev_sentences=5,
    threads=1,
    progress=False,
)
trainer = Trainer(options)
progress = trainer.run()
state = {name: tensor.detach().contiguous() for name, tensor in unique_state(trainer.model).items()}
save_file(state, str(data / f"rank{os.environ['RANK']}.safetensors"))
print(f"trained {progress['step']} steps")
