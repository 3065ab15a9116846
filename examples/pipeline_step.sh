#!/usr/bin/env bash
# hepae as a step of an analysis pipeline: every command exits non-zero on failure, and --json gives
# results a next step can parse. Sizes are set by environment variables:
#   EVENTS=20000 EPOCHS=20 WORKDIR=hepae-pipeline bash examples/pipeline_step.sh
set -euo pipefail

EVENTS=${EVENTS:-20000}
EPOCHS=${EPOCHS:-20}
WORKDIR=${WORKDIR:-hepae-pipeline}
mkdir -p "$WORKDIR"
cd "$WORKDIR"

# input: a generated xAOD-layout sample (replace with your own files)
hepae make-sample jets.root --features atlas-jets-4d --events "$EVENTS" --overwrite --quiet

hepae train jets.root --features atlas-jets-4d --latent 3 --epochs "$EPOCHS" -o jets4d.hepae --overwrite --quiet --json > train.json
hepae compress jets.root -m jets4d.hepae -o jets.compressed.root --overwrite --quiet --json > compress.json
hepae decompress jets.compressed.root -o jets.reco.root --overwrite --quiet --json > decompress.json
hepae inspect jets.compressed.root --json > inspect.json
hepae residuals jets.root jets.reco.root --features atlas-jets-4d --json > residuals.json

# a later step reads the JSON results
python - <<'PY'
import json
compress = json.load(open("compress.json"))
residuals = json.load(open("residuals.json"))
inspect = json.load(open("inspect.json"))
assert inspect["metadata"]["collection"]["n_objects"] == compress["n_objects"]
print(f"{compress['n_objects']} jets: {compress['bytes_per_object_input']} -> {compress['bytes_per_object_latent']} B/jet; "
      f"pt sigma {residuals['pt']['std']:.2e}, eta sigma {residuals['eta']['std']:.2e}")
PY
