"""One cached decoder step, eager vs torch.compile (inductor): is compiling worth it for the app?

    python benchmarks/compile_step.py [--model resources/models/fr-en] [--threads 1] [--steps 100]

Prints the compile (warm-up) time and the step time (best of 5 runs of --steps steps, thread CPU
time) of `Transformer.decode` with the attention maps captured, as a typing trace runs it: a
20-piece source, a cache of 12 to 19 target positions, one new token. The app stays eager: the
table says why (the compile takes minutes of a 2-core machine and needs a C++ compiler; the step
gets less than twice as fast).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.model import ActivationCache  # noqa: E402
from engine.translator import Translator  # noqa: E402

SENTENCE = "Je ne pense pas que nous devrions partir avant la fin de la réunion, tu sais."
PREFIX = [1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]  # <s> and 11 pieces already in the cache


def step_ms(decode, model, memory, src, steps: int) -> float:
    """Best of 5: mean thread CPU milliseconds of one cached step with capture."""
    best = float("inf")
    for _ in range(5):
        cache = model.new_cache()
        decode(torch.tensor([PREFIX]), memory, src, None, cache)
        start_length = cache.length
        start = time.thread_time()
        for i in range(steps):
            cache.truncate(start_length + i % 8)  # cache lengths 12 … 19, as while typing
            decode(torch.tensor([[20]]), memory, src, ActivationCache(), cache)
        best = min(best, (time.thread_time() - start) / steps * 1000)
    return best


def warm_up_s(decode, model, memory, src) -> float:
    """Wall seconds of the first steps (for a compiled decode: tracing and compiling it)."""
    start = time.perf_counter()
    cache = model.new_cache()
    decode(torch.tensor([PREFIX]), memory, src, ActivationCache(), cache)
    for i in range(5):
        decode(torch.tensor([[20 + i]]), memory, src, ActivationCache(), cache)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "fr-en")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.from_directory(args.model, "cpu")
    model = translator.model
    src = torch.tensor([translator.source(SENTENCE).ids])
    print(f"torch {torch.__version__}, {args.threads} thread(s), C++ compiler: {shutil.which('c++') or 'none'}")
    print(f"{'decode':<28} | {'warm-up s':>9} | {'step ms':>7}")
    with torch.inference_mode():
        memory = model.encode(src)
        rows = [("eager", model.decode)]
        rows.append(("torch.compile(dynamic=True)", torch.compile(model.decode, dynamic=True)))
        for name, decode in rows:
            try:
                warm = warm_up_s(decode, model, memory, src)
            except Exception as error:  # no compiler, or inductor cannot build here
                print(f"{name:<28} | failed: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
                continue
            print(f"{name:<28} | {warm:>9.1f} | {step_ms(decode, model, memory, src, args.steps):>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
