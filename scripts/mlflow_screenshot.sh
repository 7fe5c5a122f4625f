#!/usr/bin/env bash
# docs/mlflow_runs.png, the MLflow picture in the README: a 3-cell grid (MiniLM-L6 on 300 SST-2
# examples, 1 epoch: full fine-tuning, LoRA, AdapterH) logged to a throwaway MLflow server on
# loopback, its runs table photographed by headless Chromium in the Model training view.
# About 3-6 minutes on 2 CPU cores. Needs the shared data ($HARNESS_DATA_DIR, else ../shared/data),
# the cpu-models extra (MiniLM-L6) and Debian's chromium.
#
#   scripts/mlflow_screenshot.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/mlflow_runs.png}
data=${HARNESS_DATA_DIR:-../shared/data}
work=$(mktemp -d)

port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uri="http://127.0.0.1:$port"
setsid mlflow server --host 127.0.0.1 --port "$port" --workers 1 \
  --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/artifacts" \
  > "$work/server.log" 2>&1 &
server=$!
trap 'kill -- -"$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 240); do
  python -c "import urllib.request; urllib.request.urlopen('$uri/health', timeout=1)" 2>/dev/null && break
  sleep 0.5
done

cat > "$work/grid.yaml" <<'EOF'
name: mlflow-screenshot
description: Three methods on a slice of SST-2 with MiniLM-L6, for the README's MLflow picture.
base:
  task: glue/sst2
  model: minilm-l6
  max_train_samples: 300
  max_eval_samples: 200
  epochs: 1
  save_weights: false
axes:
  method:
    - {method: full, learning_rate: 1.0e-4}
    - {method: lora, learning_rate: 3.0e-3}
    - {method: adapter_h, learning_rate: 2.0e-3}
EOF
HF_HUB_OFFLINE=1 harness grid "$work/grid.yaml" --set data_dir="$data" tracking_uri="$uri" --output-dir "$work/results"

# The columns to compare, saved as a shared view (the experiment tag the UI's Share button writes):
# the datasets, best accuracy (sorted on) and trainable parameters, the method and its learning rate.
experiment=$(python - "$uri" <<'EOF'
import json
import sys

from mlflow import MlflowClient

client = MlflowClient(sys.argv[1])
experiment = client.get_experiment_by_name("harness").experiment_id
columns = ["attributes.`Dataset`", "metrics.`best_accuracy`", "metrics.`params_trainable`", "params.`method`",
           "params.`learning_rate`"]
client.set_experiment_tag(experiment, "mlflow.sharedViewState.methods", json.dumps(
    {"selectedColumns": columns, "orderByKey": "metrics.`best_accuracy`", "orderByAsc": False}))
print(experiment)
EOF
)

# MLflow 3.17's sidebar switch (GenAI / Model training) follows the browser, not the experiment:
# the link asks for Model training. A fresh profile sees what a first-time user sees.
mkdir -p "$(dirname "$out")"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --user-data-dir="$work/browser" \
  --window-size=2000,560 --virtual-time-budget=15000 --screenshot="$out" \
  "$uri/#/experiments/$experiment/runs?workflowType=machine_learning&viewStateShareKey=methods" 2> /dev/null
echo "wrote $out"
