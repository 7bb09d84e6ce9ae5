#!/usr/bin/env bash
# The GPU path in one script: what the machine has, the CUDA tests (with torchrun on every GPU),
# the headline figures and the engine benchmark on CUDA, and a short report.
#
#   bash benchmarks/gpu_check.sh OUTDIR [--quick]
#
# Writes OUTDIR/report.md, OUTDIR/summary.json and one log per step. Without a GPU it says so at the
# top of the report, runs what it can (the CUDA tests are collected and skipped, the figures come
# from the CPU in --quick form) and still exits 0; it exits 1 when a step that ran failed.
# PYTHON picks the interpreter (default: .venv/bin/python, else python3).
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR [--quick]}
QUICK=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 PYTHONPATH=.
REPORT="$OUT/report.md"
FAILED=0

step() {  # step NAME COMMAND...: run it, keep its output in OUTDIR/NAME.log, add a line to the report
    local name=$1 start rc
    shift
    echo "== $name: $*"
    start=$(date +%s)
    "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    tail -n 25 "$OUT/$name.log"
    [ "$rc" -ne 0 ] && FAILED=1
    printf '| %s | `%s` | %s | %ss |\n' "$name" "$*" "$([ "$rc" -eq 0 ] && echo ok || echo "FAILED ($rc)")" \
        "$(($(date +%s) - start))" >>"$OUT/steps.md"
}

: >"$OUT/steps.md"
echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null && nvidia-smi >"$OUT/nvidia-smi.log" 2>&1; then
    cat "$OUT/nvidia-smi.log"
else
    echo "nvidia-smi: not available" | tee "$OUT/nvidia-smi.log"
fi
"$PY" - >"$OUT/versions.log" 2>&1 <<'EOF'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, built for CUDA {torch.version.cuda}")
print(f"cuda available: {torch.cuda.is_available()}, devices: {torch.cuda.device_count()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
EOF
cat "$OUT/versions.log"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)

if [ "$GPUS" -gt 0 ]; then
    DEVICE=cuda
    SUMMARY_FLAGS=(--device cuda ${QUICK:+--quick})
else
    DEVICE=cpu
    SUMMARY_FLAGS=(--device cpu --quick)
    echo "NO GPU FOUND: the CUDA tests will be skipped and the figures are a quick CPU rehearsal"
fi

step cuda_tests "$PY" -m pytest -q -p no:cacheprovider -m requires_cuda tests/
step ddp_gloo_tests "$PY" -m pytest -q -p no:cacheprovider tests/engine/test_train.py -k torchrun_gloo
step summary "$PY" benchmarks/summary.py "${SUMMARY_FLAGS[@]}" --json "$OUT/summary.json"
step engine_latency "$PY" benchmarks/engine_latency.py --device "$DEVICE" --quick

{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
    echo
    if [ "$GPUS" -gt 0 ]; then
        echo "$GPUS CUDA device(s); figures measured on cuda."
    else
        echo "**No GPU found.** Nothing here was verified on CUDA: the requires_cuda tests (CPU and CUDA"
        echo "logits and traces agree, torchrun on every GPU with nccl) were skipped, and the figures are a"
        echo "quick CPU rehearsal, not CPU figures to quote (see benchmarks/RESULTS.md for those)."
    fi
    echo
    echo '```'
    cat "$OUT/versions.log"
    grep -E "Driver Version|MiB" "$OUT/nvidia-smi.log" | head -n 4
    echo '```'
    echo
    echo "| step | command | result | time |"
    echo "|---|---|---|---|"
    cat "$OUT/steps.md"
    echo
    echo "## Tests"
    echo
    echo '```'
    grep -hE "passed|failed|skipped|error" "$OUT/cuda_tests.log" "$OUT/ddp_gloo_tests.log" | tail -n 6
    echo '```'
    echo
    echo "## Headline figures (benchmarks/summary.py)"
    echo
    echo '```'
    [ -f "$OUT/summary.json" ] && cat "$OUT/summary.json" || echo "no summary.json: see summary.log"
    echo '```'
} >"$REPORT"
echo "== report: $REPORT"
exit "$FAILED"
