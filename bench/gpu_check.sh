#!/usr/bin/env bash
# One GPU check for fewgan's CUDA path (AMP, channels_last, DDP over NCCL), sized to finish in under
# 8 minutes on one GPU. Prints a table at the end; every row comes from a command run here.
#
#   bench/gpu_check.sh            # on a GPU machine, from the repository root, with the venv on PATH
#   bench/gpu_check.sh --dry-run  # the same steps on the CPU at toy sizes (what the test suite runs)
#
# Rows:
#   1. FastGAN training step at 256 px, batch 8 (bench/bench_fastgan.py): the official-maths baseline in
#      fp32, fewgan's step in fp32 and under bf16 autocast, NCHW and channels_last;
#   2. torch-fidelity Inception images/s (bench/bench_metrics.py --only inception);
#   3. the smoke profile end to end (Snakemake) with params device: cuda (the dry run: DCGAN up to its training);
#   4. a 1-process torchrun DDP smoke (fewgan train under torchrun, NCCL backend on CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
if (( DRY )); then  # every step once at toy sizes; the smoke run: one model, up to its training (the whole
  # smoke DAG on the CPU is tests/test_workflow.py's job; here the script's own plumbing is under test)
  DEV=cpu; RES=64; BATCH=2; WIDTH=16; ITERS=1; WARM=0; ROUNDS=1; INC=8; THREADS=1; MODELS="--models dcgan"
  TARGET=runs/demo_faces/dcgan/s0/train
else
  DEV=cuda; RES=256; BATCH=8; WIDTH=64; ITERS=10; WARM=3; ROUNDS=2; INC=512; THREADS=4; MODELS=""; TARGET=all
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use --dry-run on a CPU machine')"
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ROWS="$OUT/rows.tsv"
: > "$ROWS"
row() { printf '%s\t%s\n' "$1" "$2" >> "$ROWS"; }
DEVICE_NAME=$(python -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() and '$DEV' == 'cuda' else 'CPU (dry run)')")
row "device" "$DEVICE_NAME; torch $(python -c 'import torch; print(torch.__version__)')"

# ---- 1. FastGAN step ------------------------------------------------------------------------------
for CL in off on; do
  VARIANTS=fewgan,fewgan-bf16
  [[ $CL == off ]] && VARIANTS=baseline,fewgan,fewgan-bf16
  if (( DRY )); then  # one fp32 variant per layout: every variant (bf16 too, 18 s per CPU step without
    # AVX512-BF16) is tests/test_bench_scripts.py's bench_fastgan test
    VARIANTS=fewgan
    [[ $CL == off ]] && VARIANTS=baseline
  fi
  python bench/bench_fastgan.py --device "$DEV" --resolution "$RES" --batch "$BATCH" --ngf "$WIDTH" --ndf "$WIDTH" \
    --iters "$ITERS" --warmup "$WARM" --rounds "$ROUNDS" --recon lpips --threads "$THREADS" \
    --channels-last "$CL" --variants "$VARIANTS" --json "$OUT/step_$CL.json" > "$OUT/step_$CL.log" 2>&1 \
    || { cat "$OUT/step_$CL.log"; exit 1; }
  python - "$OUT/step_$CL.json" "$CL" >> "$ROWS" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    mem = f", peak CUDA {r['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in r else f", peak RSS {r['peak_rss_mb']:.0f} MB"
    print(f"FastGAN step {r['resolution']}px b{r['batch']} {r['variant']} {r['precision']} channels_last={sys.argv[2]}\t"
          f"{r['median_s'] * 1000:.1f} ms/iter (median of {len(r['times_s'])}){mem}")
EOF
done

# ---- 2. Inception images/s ----------------------------------------------------------------------------
python bench/bench_metrics.py --only inception --device "$DEV" --res "$RES" --inception-images "$INC" \
  --repeats 2 --threads "$THREADS" > "$OUT/inception.log" 2>&1 || { cat "$OUT/inception.log"; exit 1; }
row "Inception images/s (as shipped / channels_last)" "$(grep '^Inception' "$OUT/inception.log" | awk '{print $5, "/", $6}')"

# ---- 3. smoke profile end to end on the device ---------------------------------------------------------
PROJ="$OUT/project"
mkdir -p "$PROJ"
cp -r workflow params src dvc.yaml "$PROJ/"
(
  cd "$PROJ"
  fewgan params --profile smoke $MODELS > /dev/null
  python - "$DEV" <<'EOF'
import sys, yaml
p = yaml.safe_load(open("params/active.yaml"))
p["device"] = sys.argv[1]   # an experiment override (what `dvc exp run -S` does); the stale check allows it
yaml.safe_dump(p, open("params/active.yaml", "w"), sort_keys=False)
EOF
  start=$(date +%s)
  snakemake --cores 4 "$TARGET" > "$OUT/smoke.log" 2>&1 || { tail -50 "$OUT/smoke.log"; exit 1; }
  echo $(( $(date +%s) - start )) > "$OUT/smoke_seconds"
  python -c "import glob, json; m = json.load(open(sorted(glob.glob('runs/demo_faces/*/s*/train/run.json'))[0])); print(m['model'], m['device'], m['precision'], m['seconds_per_iteration'])" > "$OUT/smoke_run"
)
row "smoke profile, snakemake --cores 4 $TARGET, device $DEV" "$(cat "$OUT/smoke_seconds") s end to end; run.json: $(cat "$OUT/smoke_run")"

# ---- 4. 1-process torchrun DDP smoke --------------------------------------------------------------------
(
  cd "$PROJ"
  rm -rf work/ddp runs/ddp
  torchrun --standalone --nproc_per_node 1 -m fewgan.cli train --dataset demo_faces --model fastgan --seed 0 \
    --out runs/ddp/train --work work/ddp > "$OUT/ddp.log" 2>&1 || { tail -40 "$OUT/ddp.log"; exit 1; }
  python -c "import json; m = json.load(open('runs/ddp/train/run.json')); print(f\"world_size {m['world_size']}, device {m['device']}, {m['iterations']} iterations, {m['seconds_per_iteration']:.3f} s/iter\")" > "$OUT/ddp_run"
)
row "torchrun DDP, 1 process (fewgan train)" "$(cat "$OUT/ddp_run")"

echo
echo "fewgan GPU check ($( ((DRY)) && echo 'DRY RUN on CPU, toy sizes' || echo "$DEV" ))"
printf '%-75s | %s\n' "what" "result"
printf '%-75s-+-%s\n' "$(printf -- '-%.0s' {1..75})" "------"
while IFS=$'\t' read -r what result; do printf '%-75s | %s\n' "$what" "$result"; done < "$ROWS"
