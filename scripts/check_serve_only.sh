#!/usr/bin/env bash
# The serve-only install works alone: `pip install torch` then `pip install ".[serve]"` in a
# fresh virtual environment, without scikit-learn, scipy or wfdb, serves a bundle over REST,
# exports it to ONNX and predicts a real file with ONNX Runtime.
#
#   bash scripts/check_serve_only.sh BUNDLE DATA
#
# BUNDLE: a PhysioNet 2012 bundle trained beforehand in the full environment, e.g.
#   medseq train configs/gru.toml --set train.epochs=1 --set data.max_subjects=300 -o DIR
# DATA: a PhysioNet 2012 set to predict (e.g. $MEDSEQ_DATA/physionet2012/set-b.tar.gz).
# Steps: fresh venv in a temp dir -> assert sklearn/scipy/wfdb absent -> `medseq export
# --format onnx` -> `medseq predict --runtime onnx DATA` -> `medseq serve` on 127.0.0.1 and a
# free port -> wait for /healthz -> POST one real stay of DATA to /v1/predict -> the answer
# equals the ONNX prediction of that stay (1e-4) -> stop the server. Any failure exits
# non-zero. Env: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0), KEEP=1 keeps
# the temp dir.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUNDLE DATA" >&2
    exit 2
fi
BUNDLE=$(realpath "$1")
DATA=$(realpath "$2")
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
WORK=$(mktemp -d -t medseq-serve-only.XXXXXX)
SERVER_PID=""
START=$(date +%s)

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" != "1" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
fail() { echo "serve-only check FAILED: $*" >&2; exit 1; }
step() { echo "== $* ($(($(date +%s) - START)) s)"; }

step "fresh venv in $WORK"
"$PYTHON" -m venv "$WORK/venv"
BIN="$WORK/venv/bin"
"$BIN/pip" install --quiet $TORCH_SPEC
# A copy of the tree, so the install builds nothing into the checkout.
mkdir "$WORK/src"
git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$WORK/src")
"$BIN/pip" install --quiet "$WORK/src[serve]"

step "sklearn, scipy and wfdb are absent"
"$BIN/python" - <<'EOF' || fail "a training dependency is installed by medseq[serve]"
import importlib.util, sys
present = [m for m in ("sklearn", "scipy", "wfdb") if importlib.util.find_spec(m)]
print("present:", present or "none")
sys.exit(1 if present else 0)
EOF

step "medseq export --format onnx"
cd "$WORK"
"$BIN/medseq" export "$BUNDLE" --format onnx -o "$WORK/model.onnx" || fail "export"
step "medseq predict --runtime onnx"
cp -r "$BUNDLE" "$WORK/bundle"
cp "$WORK/model.onnx" "$WORK/bundle/model.onnx"
"$BIN/medseq" predict "$WORK/bundle" --data "$DATA" --runtime onnx -o "$WORK/onnx.csv" \
    || fail "predict --runtime onnx"

step "medseq serve"
PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))')
MEDSEQ_SERVE_TOKENS="$TOKEN" "$BIN/medseq" serve "$BUNDLE" --host 127.0.0.1 --port "$PORT" \
    --state-db "$WORK/state.sqlite" > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
    if "$BIN/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null; then
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; fail "the server exited"; }
    sleep 0.5
done

step "POST /v1/predict with a real stay"
PORT=$PORT TOKEN=$TOKEN DATA=$DATA "$BIN/python" - <<'EOF' || { cat "$WORK/serve.log" >&2; fail "predict over HTTP"; }
import json, math, os, urllib.request

import pandas as pd

from medseq.sources import physionet2012

data = physionet2012.read(os.environ["DATA"])
sid = int(data.static.index[0])
events = data.events[data.events.subject_id == sid]
body = {"patients": [{
    "patient_id": f"s{sid}",
    "static": {k: float(v) for k, v in data.static.loc[sid].items() if v == v},
    "events": [{"time": float(t), "code": str(c), "value": float(v)}
               for t, c, v in zip(events.time, events.code, events.value)],
}]}
request = urllib.request.Request(
    f"http://127.0.0.1:{os.environ['PORT']}/v1/predict", data=json.dumps(body).encode(),
    headers={"Authorization": f"Bearer {os.environ['TOKEN']}",
             "Content-Type": "application/json"}, method="POST")
with urllib.request.urlopen(request, timeout=60) as answer:
    out = json.load(answer)
risk = out["predictions"][0]["probabilities"][0]
onnx = pd.read_csv("onnx.csv").set_index("subject_id").loc[sid, "risk"]
print(f"subject {sid}: REST {risk:.6f}, ONNX {onnx:.6f}, model {out['model_version']}")
assert out["predictions"][0]["id"] == f"s{sid}" and 0.0 <= risk <= 1.0
assert math.isclose(risk, onnx, abs_tol=1e-4), (risk, onnx)
EOF

step "stop the server"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
grep -q "Traceback" "$WORK/serve.log" && { cat "$WORK/serve.log" >&2; fail "traceback in the server log"; }
step "serve-only check passed"
