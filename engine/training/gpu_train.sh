#!/usr/bin/env bash
# Issue 19 on a GPU, in one device run of under 10 minutes: both shipped models (3 + 3 layers,
# d_model 256: the app's architecture, unchanged) trained on from their shipped weights for MINUTES,
# both at once on one GPU, then evaluated on test.tsv (greedy and beam 4); the results come back
# as three files a device run can return (at most 8 files of 16 MB):
#
#   OUT/fr-en.safetensors, OUT/en-fr.safetensors   the weights in float16 (about 15 MB each)
#   OUT/logs.tar.gz                                 each model's config.json and training_log.csv,
#                                                   the training logs, the test scores, the machine
#
#   bash engine/training/gpu_train.sh DATA_DIR OUT [MINUTES] [--rehearse]
#
# DATA_DIR holds train.tsv, dev.tsv and test.tsv (../shared/data/tatoeba-fra-eng here; a device run
# needs a copy inside the checkout, named in `carry`). --rehearse: 3,000 training pairs, 300 dev and
# test pairs and small batches on whatever machine runs it: a check that the script works, not a
# model. A GPU lifts the 2-core limits: batches of 16,000 tokens and no subword sampling (re-encoding
# the corpus every epoch would starve it), with dropout 0.3, weight decay 0.01, a cosine decay, dev
# BLEU on all 1,000 dev pairs every 500 steps and the average of the last 5 checkpoints tried.
#
# Through the device tool (the data beside the checkout does not travel; carry a copy):
#   mkdir -p .device-data && cp ../shared/data/tatoeba-fra-eng/*.tsv .device-data/ &&
#   echo /.device-data/ >>.git/info/exclude
#   run(command="bash engine/training/gpu_train.sh .device-data $OUT 6", carry=[".device-data"], timeout_s=600)
# (6 minutes of training, then about a minute of scoring; rehearsed on the CPU with --rehearse.)
#
# Back here, a model folder is the shipped one with the new weights and config.json:
#   mkdir new && tar -xzf OUT/logs.tar.gz -C new && cp resources/models/fr-en/spm.model new/fr-en/ &&
#   cp OUT/fr-en.safetensors new/fr-en/model.safetensors && python -m engine evaluate --model new/fr-en ...
# and it ships only if it beats the shipped model on test.tsv (the model cards say how to write it up).
set -euo pipefail
DATA=${1:?usage: bash engine/training/gpu_train.sh DATA_DIR OUT [MINUTES] [--rehearse]}
OUT=${2:?usage: bash engine/training/gpu_train.sh DATA_DIR OUT [MINUTES] [--rehearse]}
MINUTES=${3:-5}
REHEARSE=${4:-}
DATA=$(cd "$DATA" && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
export PYTHONPATH=. PYTHONUNBUFFERED=1
WORK=$(mktemp -d)
LOGS="$WORK/logs"
mkdir -p "$LOGS"

if [ -n "$REHEARSE" ]; then
    head -n 3000 "$DATA/train.tsv" >"$WORK/train.tsv"
    head -n 300 "$DATA/dev.tsv" >"$WORK/dev.tsv"
    head -n 300 "$DATA/test.tsv" >"$WORK/test.tsv"
    DATA=$WORK TOKENS=2000 EVERY=20 THREADS=1
else
    TOKENS=16000 EVERY=500 THREADS=8
fi

"$PY" - >"$LOGS/machine.txt" <<'EOF'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
EOF
cat "$LOGS/machine.txt"

pids=()
for pair in "fr-en 0 1 fr en" "en-fr 1 0 en fr"; do
    read -r name src tgt src_lang tgt_lang <<<"$pair"
    "$PY" -m engine -v train --train "$DATA/train.tsv" --dev "$DATA/dev.tsv" --out "$WORK/$name" \
        --checkpoint-dir "$WORK/runs-$name" --source-column "$src" --target-column "$tgt" \
        --source-lang "$src_lang" --target-lang "$tgt_lang" --init-from "resources/models/$name" \
        --dropout 0.3 --weight-decay 0.01 --lr-schedule cosine --peak-lr 5e-4 --warmup 500 \
        --max-tokens "$TOKENS" --bf16 --time-budget "$MINUTES" --eval-every "$EVERY" --dev-sentences 1000 \
        --average-last 5 --threads "$THREADS" --no-progress >"$LOGS/train-$name.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || { echo "a training run failed:"; tail -n 20 "$LOGS"/train-*.log; exit 1; }
done

for name in fr-en en-fr; do
    for beam in 1 4; do
        "$PY" -m engine evaluate --model "$WORK/$name" --test "$DATA/test.tsv" --beam "$beam" \
            >>"$LOGS/test-$name.txt" 2>&1
    done
    cat "$LOGS/test-$name.txt"
    "$PY" -m engine average --model "$WORK/$name" --out "$WORK/half-$name" --float16 "$WORK/$name"
    cp "$WORK/half-$name/model.safetensors" "$OUT/$name.safetensors"
    mkdir -p "$LOGS/$name"
    cp "$WORK/$name/config.json" "$WORK/$name/training_log.csv" "$LOGS/$name/"
done
tar -czf "$OUT/logs.tar.gz" -C "$LOGS" .
ls -la "$OUT"
