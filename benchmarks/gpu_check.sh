#!/usr/bin/env bash
# One-shot check of the CUDA path on a machine with a GPU, from the repository root:
#
#   bash benchmarks/gpu_check.sh            # about 5 minutes on one modern GPU (budget: 8)
#
# 1. training and inference throughput of the nine architectures, fp32 against
#    bf16 autocast + channels-last (benchmarks/train_throughput.py);
# 2. a short real training on the demo tiles (made by Snakemake in results/tiles
#    when missing), killed with SIGTERM mid-run and rerun: it must exit 143, then
#    resume from last.pt and finish every epoch;
# 3. whole-scene prediction, old and new inference defaults, an ensemble of 3, and
#    peak memory per scene size (benchmarks/predict_throughput.py);
# then prints one Markdown table headed by the card's name. Work files go to
# $GPU_CHECK_DIR (default: a new temporary folder). Exits non-zero, saying why,
# where torch sees no CUDA device or a check fails.
#
# --smoke runs the same steps on the CPU at toy sizes: it checks this script, and
# its figures mean nothing.
set -euo pipefail

smoke=0
if [[ "${1:-}" == "--smoke" ]]; then
    smoke=1
elif [[ $# -gt 0 ]]; then
    echo "usage: bash benchmarks/gpu_check.sh [--smoke]" >&2
    exit 2
fi

PYTHON=${PYTHON:-python}
cd "$(dirname "$0")/.."
work=${GPU_CHECK_DIR:-$(mktemp -d -t glaciermap-gpu-check.XXXXXX)}
mkdir -p "$work"
start=$SECONDS

fail() {
    echo "gpu_check: $*" >&2
    exit 1
}

if [[ $smoke == 0 ]]; then
    if ! card=$("$PYTHON" -c '
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)")
print(torch.cuda.get_device_name(0))
'); then
        [[ -n ${GPU_CHECK_DIR:-} ]] || rm -rf "$work"
        echo "gpu_check: no CUDA device. This check needs a machine with an NVIDIA GPU and" \
            "a CUDA build of torch; nothing was measured." >&2
        exit 3
    fi
    device=cuda
    models=(maresunet unetplusplus manet wavemix linknet fpn pspnet pan deeplabv3plus)
    steps=(--steps 10 --warmup 3)
    epochs=40
    predict=(--size 4096 --batch-size 8 --memory-sizes 2048 8192)
else
    card="CPU smoke run (not a GPU measurement)"
    device=cpu
    models=(deeplabv3plus fpn)
    steps=(--steps 1 --warmup 0 --threads 2)
    epochs=3
    predict=(--size 256 --encoder resnet18 --repeats 1 --batch-size 1 --memory-sizes 256 --threads 2)
fi
echo "gpu_check on $card; work files in $work"

step() {
    echo
    echo "== $* ($((SECONDS - start)) s so far)"
}

step "1/3 training and inference throughput, fp32 vs bf16 + channels-last"
"$PYTHON" benchmarks/train_throughput.py --device "$device" --models "${models[@]}" \
    "${steps[@]}" | tee "$work/train_throughput.md"

step "2/3 training on the demo tiles, killed mid-run and resumed"
tiles=(results/tiles/oct2000/train.npz results/tiles/oct2000/val.npz results/tiles/oct2000/stats.json)
snakemake --cores "$(nproc)" "${tiles[@]}" >"$work/tiles.log" 2>&1 ||
    fail "making the demo tiles failed, see $work/tiles.log"
run="$work/run"
rm -rf "$run"
train=("$PYTHON" -m glaciermap train --model deeplabv3plus --hparams dropout0.4-softmax-mean
    --dates oct2000 --seed 1 --epochs "$epochs" --device "$device" --out "$run")
train_start=$SECONDS
"${train[@]}" 2>"$work/train_killed.log" &
pid=$!
while [[ ! -f "$run/last.pt" ]] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
kill -TERM "$pid" 2>/dev/null || true
killed=0
wait "$pid" || killed=$?
[[ $killed == 143 ]] ||
    fail "the killed run exited $killed, not 143 (finished before SIGTERM?), see $work/train_killed.log"
"${train[@]}" 2>"$work/train_resumed.log" || fail "the resumed run failed, see $work/train_resumed.log"
train_seconds=$((SECONDS - train_start))
resumed=$(grep -o 'after epoch [0-9]*' "$work/train_resumed.log" | head -n1 || true)
[[ -n $resumed ]] || fail "the rerun did not resume from last.pt, see $work/train_resumed.log"
"$PYTHON" - "$run/metrics.json" "$epochs" "$resumed" "$train_seconds" >"$work/training.json" <<'EOF'
import json, sys
metrics = json.load(open(sys.argv[1]))
epochs = len(metrics["epochs"])
if epochs != int(sys.argv[2]):
    sys.exit(f"gpu_check: the resumed run has {epochs} epochs, not {sys.argv[2]}")
print(json.dumps({"epochs": epochs, "resumed": sys.argv[3], "seconds": int(sys.argv[4]),
                  "best_val_f1": metrics["best_val_f1"], "device": metrics["device"]}))
EOF
cat "$work/training.json"

step "3/3 whole-scene prediction"
"$PYTHON" benchmarks/predict_throughput.py --device "$device" "${predict[@]}" \
    --json "$work/predict.json"

step "summary"
"$PYTHON" - "$card" "$work" "$((SECONDS - start))" <<'EOF'
import json, sys
from pathlib import Path

card, work, seconds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
rows = []
for line in (work / "train_throughput.md").read_text().splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if len(cells) == 8 and cells[0] not in ("model", "---") and not cells[0].startswith("-"):
        name, _, train_fast, train_plain, _, infer_fast, infer_plain, _ = cells
        for what, fast, plain in (("train", train_fast, train_plain), ("infer", infer_fast, infer_plain)):
            ratio = float(fast) / float(plain)
            label = f"{what} {name}, patches/s at 128 px: fp32 vs bf16 + channels-last"
            rows.append((label, plain, fast, f"{ratio:.2f}"))
training = json.loads((work / "training.json").read_text())
rows.append((
    f"training killed and resumed ({training['resumed']})",
    "",
    f"{training['epochs']} epochs in {training['seconds']} s",
    f"val F1 {training['best_val_f1']:.3f}",
))
predict = json.loads((work / "predict.json").read_text())
for run in predict["runs"]:
    rows.append((
        f"scene {predict['scene']} px, {run['setting']}: Mpx/s, bare model vs pipeline",
        f"{run['bare_mpx_s']:.2f}",
        f"{run['scene_mpx_s']:.2f}",
        f"{run['scene_fraction']:.0%} (windows {run['window_fraction']:.0%})",
    ))
if "ensemble" in predict:
    e = predict["ensemble"]
    rows.append((
        f"ensemble of {e['members']}: s, one model vs all", f"{e['one']:.1f}", f"{e['all']:.1f}",
        f"{e['all'] / (e['members'] * e['one']):.2f} x members",
    ))
for m in predict.get("memory", []):
    gpu = f", GPU {m['gpu_mb']:.0f} MB" if m.get("gpu_mb") else ""
    rows.append((f"peak memory, scene {m['size']} px", "", f"{m['peak_mb']:.0f} MB{gpu}", ""))
print(f"\nGPU check: {card}; {predict['device']}; {seconds} s in all\n")
print("| measurement | reference | measured | ratio |")
print("|---|---:|---:|---:|")
for row in rows:
    print("| " + " | ".join(row) + " |")
if seconds > 480:
    print(f"\nwarning: the check took {seconds} s, over its 8-minute budget")
EOF
