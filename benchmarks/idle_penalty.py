"""How much slower the same arithmetic runs right after the process was idle, on this machine.

    python benchmarks/idle_penalty.py [--threads 1] [--repeats 15]

The typing figures time each key after a 150 ms pause, as a person types. On some machines (seen
on the 2-core VM this project is developed on) vector-heavy work right after such a pause runs
several times slower than the same work back to back, while plain Python does not: the cost is the
machine's, not the engine's. This prints, for one matmul of a decoder's output projection size
(256 × 256 by 256 × 8000) and for a pure-Python loop, the median and minimum thread CPU time back to
back and after each pause. Run it with nothing else busy; compare with the typing figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed_ms(work, pause_s: float, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        if pause_s:
            time.sleep(pause_s)
        start = time.thread_time()
        work()
        times.append((time.thread_time() - start) * 1000)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, w = torch.randn(256, 256), torch.randn(8000, 256)
    work = {
        "matmul 256×256 · 256×8000": lambda: x @ w.T,
        "pure Python loop": lambda: sum(i * i for i in range(200_000)),
    }
    print(f"torch {torch.__version__}, {args.threads} thread(s); thread CPU ms, median / min of {args.repeats}")
    print(f"{'work':<26} | {'back to back':>14} | {'after 20 ms':>14} | {'after 150 ms':>14}")
    for name, fn in work.items():
        fn()  # first-call costs out of the way
        cells = []
        for pause in (0.0, 0.02, 0.15):
            times = timed_ms(fn, pause, args.repeats)
            cells.append(f"{statistics.median(times):6.1f} / {min(times):5.1f}")
        print(f"{name:<26} | {cells[0]:>14} | {cells[1]:>14} | {cells[2]:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
