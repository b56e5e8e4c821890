#!/usr/bin/env bash
# The README's first command: a synthetic ImageLabeler export, then `earthseg pipeline
# --local` on it: preprocess in the training image (as a Processing job would), train
# through the SageMaker SDK's local mode in the training image, serve in the inference
# image, predict the test scenes over HTTP, and write the report. Without a Docker engine
# the pipeline says so and runs the same stages on this machine without containers.
#
#   scripts/demo.sh DEMO_DIR     env: DEMO_SCENES, DEMO_SIZE, DEMO_TILE, DEMO_EPOCHS
set -euo pipefail

demo=${1:-demo-output}
scenes=${DEMO_SCENES:-8}
size=${DEMO_SIZE:-1024}
tile=${DEMO_TILE:-128}
epochs=${DEMO_EPOCHS:-25}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$root/.venv/bin

step() { printf '\n== %s\n' "$*"; }

rm -rf "$demo"
step "1. a synthetic ImageLabeler export ($scenes scenes of ${size} px)"
"$bin/earthseg" sample --out "$demo/export" --scenes "$scenes" --size "$size" --seed 0

if "$root/scripts/ensure-docker.sh" >/dev/null 2>&1; then
    step "2. the cpu images the local run uses (earthseg-train:cpu, earthseg-serve:cpu)"
    "$root/scripts/build-image.sh" train cpu
    "$root/scripts/build-image.sh" serve cpu
fi

# The run's config: run.yaml documents every option; the demo sets a small U-Net's worth.
cat >"$demo/run.yaml" <<YAML
name: demo
run_dir: run
export: {images: export/images, labels: export/labels}
preprocess: {tile_size: $tile, seed: 0, write_tiles: true}
train:
  hyperparameters: {epochs: $epochs, batch_size: 16, patience: 6, seed: 0}
YAML

step "3. earthseg pipeline --config $demo/run.yaml --local"
"$bin/earthseg" pipeline --config "$demo/run.yaml" --local

run=$demo/run
step "Demo outputs"
"$bin/python" - "$run" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
metrics = json.loads((run / "training/metrics.json").read_text())
test = metrics.get("test", {})
print(f"test tiles:  IoU {test.get('iou', float('nan')):.3f}  F1 {test.get('f1', float('nan')):.3f}"
      f"  (threshold {metrics['threshold']:.2f}, chosen on validation)")
PY
cat <<EOF
  the report (open in a browser):       $run/report/report.html (and report.md)
  sample export (scenes + shapefiles):  $demo/export
  training channels + manifest:         $run/dataset/{train,validation,test}, $run/dataset/manifest.json
  per-tile GeoTIFFs + _bitmap.png:      $run/dataset/tiles
  model artifact (SavedModel, ONNX, card): $run/model
  training metrics and figures:         $run/training
  test scenes predicted whole (QGIS):   $run/predictions/*.tif (mask GeoTIFF), *.geojson (polygons)
  every stage's log:                    $run/logs
Serve the model yourself: make serve-local (port 8080), then
  .venv/bin/earthseg predict --image SCENE.tif --url http://127.0.0.1:8080 --out MASK.tif
EOF
