#!/usr/bin/env bash
# The README's first command: sample export -> preprocess -> train in the local training
# container (the same image SageMaker runs, with the same /opt/ml layout) -> serve the model
# in the local inference container and predict the test scenes over HTTP, then the test
# metrics and where the figures and masks are. Without a Docker engine the training and
# prediction stages run in-process instead, and say so.
#
#   scripts/demo.sh DEMO_DIR     env: DEMO_SCENES, DEMO_SIZE, DEMO_TILE, DEMO_EPOCHS
set -euo pipefail

demo=${1:-demo-output}
scenes=${DEMO_SCENES:-8}
size=${DEMO_SIZE:-1024}
tile=${DEMO_TILE:-128}
epochs=${DEMO_EPOCHS:-25}
bin=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

step() { printf '\n== %s\n' "$*"; }

rm -rf "$demo"
step "1. a synthetic ImageLabeler export ($scenes scenes of ${size} px)"
"$bin/earthseg" sample --out "$demo/export" --scenes "$scenes" --size "$size" --seed 0

step "2. preprocess: masks, ${tile} px tiles, scene-grouped splits, packed channels"
"$bin/earthseg" preprocess --images "$demo/export/images" --labels "$demo/export/labels" \
    --out "$demo/dataset" --tile-size "$tile" --seed 0 --write-tiles

# The /opt/ml layout SageMaker gives a training container.
ml=$demo/opt_ml
mkdir -p "$ml/input/config" "$ml/input/data"
for channel in train validation test; do
    cp -r "$demo/dataset/$channel" "$ml/input/data/$channel"
done
cat >"$ml/input/config/hyperparameters.json" <<EOF
{"epochs": "$epochs", "batch_size": "16", "patience": "6", "seed": "0"}
EOF

# The scenes of the test split, named in the manifest.
test_scenes=$("$bin/python" -c 'import json, sys
manifest = json.load(open(sys.argv[1]))
print("\n".join(i["image"]["file"] for i in manifest["inputs"] if i["split"] == "test"))' \
    "$demo/dataset/manifest.json")
predictions=$demo/predictions
mkdir -p "$predictions"

if "$root/scripts/ensure-docker.sh" >/dev/null 2>&1; then
    step "3. train in the local training container (earthseg-train:cpu)"
    "$root/scripts/build-image.sh" train cpu
    docker run --rm --network host -v "$(realpath "$ml"):/opt/ml" earthseg-train:cpu train

    step "4. serve the model in the local inference container (earthseg-serve:cpu), predict the test scenes over HTTP"
    "$root/scripts/build-image.sh" serve cpu
    port=$("$bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    server=$(docker run -d --rm --network host -e SAGEMAKER_BIND_TO_PORT="$port" \
        -v "$(realpath "$ml/model"):/opt/ml/model:ro" earthseg-serve:cpu serve)
    trap 'docker stop "$server" >/dev/null 2>&1 || true' EXIT
    "$bin/python" - "$port" <<'EOF'
import sys, time, urllib.request
for _ in range(150):  # until /ping answers 200: a worker has loaded the model
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/ping", timeout=2).status == 200:
            break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("the inference container did not answer /ping within 30 s (docker logs show why)")
EOF
    source=(--url "http://127.0.0.1:$port")
else
    step "3. train in-process: no Docker engine answers (run 'make docker' as root to get one)"
    "$bin/earthseg" train --base-dir "$ml"
    step "4. predict the test scenes in-process (no Docker engine for the inference container)"
    source=(--model "$ml/model")
fi
for file in $test_scenes; do
    stem=${file%.*}
    "$bin/earthseg" predict --image "$demo/export/images/$file" "${source[@]}" \
        --out "$predictions/$stem.tif" --geojson "$predictions/$stem.geojson"
done

step "Demo outputs"
"$bin/python" - "$ml" <<'EOF'
import json, sys
from pathlib import Path
ml = Path(sys.argv[1])
metrics = json.loads((ml / "output/data/metrics.json").read_text())
test = metrics.get("test", {})
print(f"test split: IoU {test.get('iou', float('nan')):.3f}  F1 {test.get('f1', float('nan')):.3f}"
      f"  precision {test.get('precision', float('nan')):.3f}  recall {test.get('recall', float('nan')):.3f}"
      f"  (threshold {metrics['threshold']:.2f}, chosen on validation)")
EOF
cat <<EOF
  sample export (scenes + shapefiles):  $demo/export
  training channels + manifest:         $demo/dataset/{train,validation,test}, $demo/dataset/manifest.json
  per-tile GeoTIFFs + _bitmap.png:      $demo/dataset/tiles
  model artifact (SavedModel, ONNX, card): $ml/model
  figures and test metrics:             $ml/output/data/{training_curves.png,predictions.png,metrics.json}
  test scenes predicted whole (QGIS):   $predictions/*.tif (mask GeoTIFF), *.geojson (polygons)
Serve the model yourself: make serve-local (port 8080), then
  .venv/bin/earthseg predict --image SCENE.tif --url http://127.0.0.1:8080 --out MASK.tif
EOF
