#!/usr/bin/env bash
# Do the gpu images use the GPU, and how much faster are they for it? For anyone with an
# NVIDIA GPU, its driver and Docker's NVIDIA runtime (NVIDIA Container Toolkit); not part of
# CI. Builds both gpu images (cached layers: seconds when nothing changed), makes a sample
# dataset, then runs each image once with `--gpus all` and once without (the CPU):
#   - `docker run IMAGE doctor`: what each image finds (driver, CUDA, devices, its verdict);
#   - training: a few epochs in earthseg-train:gpu on the /opt/ml layout SageMaker mounts;
#   - serving: earthseg-serve:gpu with that model, batches of tiles POSTed to /invocations,
#     and a whole scene through `earthseg predict --url`;
# and prints GPU against CPU: seconds per epoch, tiles per second, seconds per scene.
#
#   scripts/gpu-check.sh [--cpu-only] [DIR]   (make gpu-check; DIR default /tmp/earthseg-gpu-check)
#
# --cpu-only skips the GPU half and its checks: the script's own test on a machine without
# a GPU. Stops at once, before any build, when nvidia-smi or Docker's nvidia runtime is
# missing. Results: DIR/gpu-check.json, logs in DIR/{gpu,cpu}/.
#
# env: GPU_CHECK_SCENES (6), GPU_CHECK_SIZE (512 px), GPU_CHECK_TILE (128 px),
#      GPU_CHECK_EPOCHS (4), GPU_CHECK_BATCH (16 tiles per request), GPU_CHECK_REQUESTS (20),
#      GPU_CHECK_SCENE_SIZE (2048 px: the whole scene predicted), BASE_IMAGE (build-image.sh's)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/.venv/bin
scenes=${GPU_CHECK_SCENES:-6}
size=${GPU_CHECK_SIZE:-512}
tile=${GPU_CHECK_TILE:-128}
epochs=${GPU_CHECK_EPOCHS:-4}
batch=${GPU_CHECK_BATCH:-16}
requests=${GPU_CHECK_REQUESTS:-20}
scene_size=${GPU_CHECK_SCENE_SIZE:-2048}
train_image=earthseg-train:gpu
serve_image=earthseg-serve:gpu
modes=(gpu cpu)

say() { printf '\n== gpu-check: %s\n' "$*"; }
die() {
    echo "gpu-check: $*" >&2
    exit 1
}

out=
for arg in "$@"; do
    case "$arg" in
        --cpu-only) modes=(cpu) ;;
        -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
        -*) die "unknown option $arg (usage: $0 [--cpu-only] [DIR])" ;;
        *) out=$arg ;;
    esac
done
out=$(realpath -m "${out:-${TMPDIR:-/tmp}/earthseg-gpu-check}")
[ -x "$bin/earthseg" ] || die "no $bin/earthseg: run 'make setup' first"

if [ "${modes[0]}" = gpu ]; then
    command -v nvidia-smi >/dev/null 2>&1 ||
        die "no nvidia-smi here: this machine has no NVIDIA driver, so --gpus all has nothing to give." \
            "Run it on a machine with an NVIDIA GPU and its driver, or run '$0 --cpu-only'."
    smi=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1) ||
        die "nvidia-smi fails, so the driver does not answer: $smi"
    runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null) ||
        die "no Docker engine answers (make docker starts one)"
    [[ $runtimes == *nvidia* ]] ||
        die "Docker has no nvidia runtime (it has: $runtimes), so --gpus all cannot reach the GPU:" \
            "install the NVIDIA Container Toolkit, run 'sudo nvidia-ctk runtime configure --runtime=docker'" \
            "and restart dockerd. Or run '$0 --cpu-only'."
    echo "gpu-check: GPU(s): $smi"
fi

say "the gpu images (${train_image}, ${serve_image})"
"$root/scripts/build-image.sh" train gpu
"$root/scripts/build-image.sh" serve gpu

rm -rf "$out"
mkdir -p "$out"
say "a sample dataset: $scenes scenes of $size px, $tile px tiles; one $scene_size px scene to predict"
"$bin/earthseg" sample --out "$out/sample" --scenes "$scenes" --size "$size" --seed 0 >/dev/null
"$bin/earthseg" preprocess --images "$out/sample/images" --labels "$out/sample/labels" \
    --out "$out/dataset" --tile-size "$tile" --seed 0 >/dev/null
"$bin/earthseg" sample --out "$out/scene" --scenes 1 --size "$scene_size" --seed 1 >/dev/null
scene=$(ls "$out"/scene/images/*.tif)

server=
cleanup() { [ -z "$server" ] || docker rm -f "$server" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# Lines of `docker run IMAGE train` stamped with the time they came: epochs.txt gets
# "SECONDS LINE" for each metrics line (epoch=N ...;).
stamp_epochs() {
    local line
    while IFS= read -r line; do
        printf '%s\n' "$line"
        if [[ $line == epoch=* ]]; then
            printf '%s %s\n' "$EPOCHREALTIME" "$line" >>"$1"
        fi
    done
}

for mode in "${modes[@]}"; do
    gpus=()
    [ "$mode" = gpu ] && gpus=(--gpus all)
    run=$out/$mode
    mkdir -p "$run"

    say "$mode: docker run ${gpus[*]} IMAGE doctor"
    for image in "$train_image" "$serve_image"; do
        echo "-- $image"
        docker run --rm --network host "${gpus[@]}" "$image" doctor 2>&1 | tee "$run/doctor-${image%%:*}.txt" ||
            echo "(doctor exited non-zero: see above)"
    done

    say "$mode: $epochs epochs in $train_image"
    opt_ml=$run/opt_ml
    mkdir -p "$opt_ml/input/config" "$opt_ml/model" "$opt_ml/output"
    printf '{"epochs": "%s", "patience": "%s", "batch_size": "16", "seed": "0"}\n' "$epochs" "$epochs" \
        >"$opt_ml/input/config/hyperparameters.json"
    echo '{"current_host": "algo-1", "hosts": ["algo-1"]}' >"$opt_ml/input/config/resourceconfig.json"
    channels=()
    for channel in train validation test; do
        channels+=(-v "$out/dataset/$channel:/opt/ml/input/data/$channel:ro")
    done
    start=$EPOCHREALTIME
    echo "$start start" >"$run/epochs.txt"
    docker run --rm --network host "${gpus[@]}" "${channels[@]}" \
        -v "$opt_ml/input/config:/opt/ml/input/config:ro" \
        -v "$opt_ml/model:/opt/ml/model" -v "$opt_ml/output:/opt/ml/output" \
        "$train_image" train 2>&1 | stamp_epochs "$run/epochs.txt" >"$run/train.log" ||
        die "training ($mode) failed: $run/train.log, $opt_ml/output/failure"
    grep -E '^epoch=' "$run/train.log" || die "training ($mode) printed no epoch: $run/train.log"

    model=$out/${modes[0]}/opt_ml/model # both modes serve the same model
    port=$("$bin/python" -c 'from earthseg.local.engine import free_port; print(free_port())')
    say "$mode: $serve_image serving on 127.0.0.1:$port"
    server=earthseg-gpu-check-$$-$mode
    docker run -d --name "$server" --network host "${gpus[@]}" -e SAGEMAKER_BIND_TO_PORT="$port" \
        -v "$model:/opt/ml/model:ro" "$serve_image" serve >/dev/null
    for _ in $(seq 240); do
        curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break
        [ "$(docker inspect -f '{{.State.Running}}' "$server")" = true ] ||
            { docker logs "$server" >&2; die "the serve container ($mode) stopped"; }
        sleep 0.25
    done
    curl -sf "http://127.0.0.1:$port/ping" >/dev/null || die "no /ping answer ($mode) in 60 s"
    "$bin/python" - "$port" "$tile" "$batch" "$requests" "$run/serve.json" <<'PY'
import io, json, sys, time
import numpy as np
import requests

port, tile, batch, count, result = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
tiles = np.random.default_rng(0).integers(0, 256, (batch, tile, tile, 3), dtype=np.uint8)
body = io.BytesIO()
np.save(body, tiles)
headers = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
url = f"http://127.0.0.1:{port}/invocations"

def post() -> None:
    answer = requests.post(url, data=body.getvalue(), headers=headers, timeout=300)
    answer.raise_for_status()
    assert np.load(io.BytesIO(answer.content)).shape == (batch, tile, tile)

for _ in range(2):  # warm-up: sessions, CUDA kernels, arenas
    post()
start = time.perf_counter()
for _ in range(count):
    post()
seconds = time.perf_counter() - start
json.dump({"tiles_per_s": batch * count / seconds}, open(result, "w"))
print(f"{count} requests of {batch} tiles of {tile} px: {batch * count / seconds:.1f} tiles/s")
PY
    start=$EPOCHREALTIME
    "$bin/earthseg" predict --image "$scene" --url "http://127.0.0.1:$port" --out "$run/scene-mask.tif" >/dev/null
    end=$EPOCHREALTIME
    echo "$start $end" >"$run/scene.txt"
    printf "whole scene (%s px) through earthseg predict --url: %.2f s\n" "$scene_size" "$(echo "$end - $start" | bc)"
    docker logs "$server" 2>&1 | grep -E 'ready: model loaded' | head -1 | tee "$run/provider.txt"
    docker rm -f "$server" >/dev/null
    server=
done

say "GPU against CPU"
"$bin/python" - "$out" "${modes[@]}" <<'PY'
import json, statistics, sys
from pathlib import Path

out, modes = Path(sys.argv[1]), sys.argv[2:]
results = {}
for mode in modes:
    run = out / mode
    stamps = [float(line.split()[0]) for line in (run / "epochs.txt").read_text().splitlines()]
    epochs = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # after the first (start, compile)
    start, end = map(float, (run / "scene.txt").read_text().split())
    results[mode] = {
        "first_epoch_s": stamps[1] - stamps[0] if len(stamps) > 1 else None,
        "epoch_s": statistics.median(epochs) if epochs else None,
        "tiles_per_s": json.loads((run / "serve.json").read_text())["tiles_per_s"],
        "scene_s": end - start,
        "provider": (run / "provider.txt").read_text().strip().rsplit(" on ", 1)[-1],
    }
(out / "gpu-check.json").write_text(json.dumps(results, indent=2) + "\n")
rows = [
    ("train: first epoch, s (with start-up)", "first_epoch_s", False),
    ("train: seconds per epoch (after it)", "epoch_s", False),
    ("serve: tiles per second", "tiles_per_s", True),
    ("serve: whole scene, s", "scene_s", False),
]
print(f"{'':40}" + "".join(f"{mode.upper():>12}" for mode in modes) + ("     GPU gain" if len(modes) == 2 else ""))
for label, key, higher_better in rows:
    values = [results[mode][key] for mode in modes]
    line = f"{label:40}" + "".join(f"{value:12.2f}" if value is not None else f"{'-':>12}" for value in values)
    if len(modes) == 2 and None not in values and min(values) > 0:
        gpu, cpu = values
        line += f"{(gpu / cpu if higher_better else cpu / gpu):12.1f}x"
    print(line)
print(f"{'serve: execution provider':40}" + "".join(f"{results[mode]['provider']:>24}" for mode in modes))
print(f"results: {out / 'gpu-check.json'}")
PY
