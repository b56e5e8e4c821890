#!/usr/bin/env bash
# The README's first command, the path a scientist's export takes: a synthetic ImageLabeler
# "download all" zip (labels only, a folder per event, the date in each name) and, standing
# in for NASA GIBS, a real WMS (MapServer) on loopback serving the events' imagery by date.
# Then `earthseg pipeline --local`: fetch each event's scene from the WMS, preprocess in the
# training image (as a Processing job would), train through the SageMaker SDK's local mode
# in the training image, serve in the inference image, predict the test scenes over HTTP,
# detect events over every scene of the archive, and write the report. Without a Docker engine the pipeline says so and runs the same
# stages on this machine without containers.
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
step "1. a synthetic ImageLabeler export ($scenes events) and its imagery (${size} px scenes)"
"$bin/earthseg" sample --out "$demo/sample" --imagelabeler --scenes "$scenes" --size "$size" --seed 0

step "2. a WMS standing in for NASA GIBS: MapServer on loopback, serving $demo/sample/imagery"
"$root/scripts/ensure-mapserver.sh"
"$bin/python" -m earthseg.synthetic.wms_server "$demo/sample/imagery" >"$demo/wms.log" 2>&1 &
wms_pid=$!
trap 'kill $wms_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    wms_url=$(head -n1 "$demo/wms.log" 2>/dev/null || true)
    [[ $wms_url == http* ]] && break
    kill -0 $wms_pid 2>/dev/null || { cat "$demo/wms.log" >&2; exit 1; }
    sleep 0.1
done
[[ $wms_url == http* ]] || { echo "the WMS did not start: $demo/wms.log" >&2; exit 1; }
echo "WMS 1.3.0 at $wms_url (GetCapabilities: $wms_url?SERVICE=WMS&REQUEST=GetCapabilities)"

if "$root/scripts/ensure-docker.sh" >/dev/null 2>&1; then
    step "3. the cpu images the local run uses (earthseg-train:cpu, earthseg-serve:cpu)"
    "$root/scripts/build-image.sh" train cpu
    "$root/scripts/build-image.sh" serve cpu
fi

# The run's config: run.yaml documents every option; the demo sets a small U-Net's worth,
# and fetches on the stand-in's own grid (0.005 degrees; GIBS's default here is 0.25km).
cat >"$demo/run.yaml" <<YAML
name: demo
run_dir: run
export: {labels: sample/export.zip}
imagery: {url: "$wms_url", resolution: 0.005deg, margin: 50km}
preprocess: {tile_size: $tile, seed: 0, write_tiles: true}
train:
  hyperparameters: {epochs: $epochs, batch_size: 16, patience: 6, seed: 0}
# Then the trained model, served, over every scene of the archive (one per date): masks,
# the event catalogue and the daily plot, at the end of the report.
detect: {scenes: sample/imagery/rasters}
YAML

step "4. earthseg pipeline --config $demo/run.yaml --local"
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
  the ImageLabeler export (labels only): $demo/sample/export.zip
  fetched scenes, labels, fetch.json:   $run/imagery
  training channels + manifest:         $run/dataset/{train,validation,test}, $run/dataset/manifest.json
  per-tile GeoTIFFs + _bitmap.png:      $run/dataset/tiles
  model artifact (SavedModel, ONNX, card): $run/model
  detection over the archive's dates:   $run/detection/{catalogue.parquet,catalogue.geojson,daily.csv,daily.png,detections.html}
  training metrics and figures:         $run/training
  test scenes predicted whole (QGIS):   $run/predictions/*.tif (mask GeoTIFF), *.geojson (polygons)
  every stage's log:                    $run/logs
Serve the model yourself: make serve-local (port 8080), then
  .venv/bin/earthseg predict --image SCENE.tif --url http://127.0.0.1:8080 --out MASK.tif
EOF
