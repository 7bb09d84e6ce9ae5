"""Build a random-weight Marian folder of the shipped models' size, to time the engine on it.

    python benchmarks/marian_folder.py OUT_DIR [--pairs 20000]
    python benchmarks/engine_latency.py --model OUT_DIR

d_model 256, 8 heads, feed-forward 1024, 3 + 3 layers, an 8,000-piece vocabulary (SentencePiece
models trained on the Tatoeba French and English sides, vocab.json padded to 8,000), shared and
tied embeddings, swish: the shape of resources/models/fr-en in Marian's layout. The weights are
random, so translations run to the length limit: compare costs per output piece, not only per sentence.
Needs transformers (the test extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
TRAIN_TSV = ROOT.parent / "shared" / "data" / "tatoeba-fra-eng" / "train.tsv"
SHIPPED_SIZES = {"d_model": 256, "heads": 8, "ffn": 1024, "layers": 3, "positions": 256}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the folder to write (named opus-mt-fr-en-… for the languages)")
    parser.add_argument("--pairs", type=int, default=20000, help="Tatoeba pairs to train the SentencePiece models on")
    args = parser.parse_args()
    from hf_fixtures import build_marian

    pairs = [line.split("\t")[:2] for line in TRAIN_TSV.read_text(encoding="utf-8").splitlines()[: args.pairs]]
    lines = ([fr for fr, _ in pairs], [en for _, en in pairs])
    options = {"spm_vocab": 4000, "lines": lines, "vocab_total": 8000}
    build_marian(args.out, seed=0, sizes=SHIPPED_SIZES, tokenizer_options=options, max_length=256)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
