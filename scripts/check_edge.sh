#!/usr/bin/env bash
# The edge install works alone: `pip install ".[edge]"` in a fresh virtual environment (numpy,
# scipy, onnxruntime and the core; no torch, no web stack) replays a real MIT-BIH record
# through `medseq monitor` with the beat model's ONNX export and prints alerts.
#
#   bash scripts/check_edge.sh BUNDLE RECORD
#
# BUNDLE: a beat bundle with its model.onnx, made beforehand in the full environment, e.g.
#   medseq train configs/mitbih-beats.toml --set train.epochs=1 -o DIR
#   medseq export DIR/bundle --format onnx
# RECORD: a WFDB record path without extension (e.g. $MEDSEQ_DATA/mitdb_full/200).
# Steps: fresh venv in a temp dir -> pip install ".[edge]" from a copy of the tree -> assert
# torch, fastapi, uvicorn, sklearn and wfdb absent -> `medseq monitor BUNDLE --record RECORD
# --runtime onnx` -> the output has an alert and the replay summary. Any failure exits
# non-zero. Env: PYTHON (default python3), KEEP=1 keeps the temp dir.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUNDLE RECORD" >&2
    exit 2
fi
BUNDLE=$(realpath "$1")
RECORD=$(realpath -m "$2")
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d -t medseq-edge.XXXXXX)
START=$(date +%s)

cleanup() {
    if [ "${KEEP:-0}" != "1" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
fail() { echo "edge check FAILED: $*" >&2; exit 1; }
step() { echo "== $* ($(($(date +%s) - START)) s)"; }

[ -f "$BUNDLE/model.onnx" ] || fail "$BUNDLE/model.onnx missing: run medseq export $BUNDLE --format onnx"
[ -f "$RECORD.hea" ] || fail "$RECORD.hea missing: RECORD is a WFDB record path without extension"

step "fresh venv in $WORK, pip install .[edge]"
"$PYTHON" -m venv "$WORK/venv"
BIN="$WORK/venv/bin"
# A copy of the tree, so the install builds nothing into the checkout.
mkdir "$WORK/src"
git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$WORK/src")
"$BIN/pip" install --quiet "$WORK/src[edge]"

step "torch, the web stack and the training stack are absent"
"$BIN/python" - <<'EOF' || fail "medseq[edge] installed a module it must not"
import importlib.util, sys
present = [m for m in ("torch", "fastapi", "uvicorn", "sklearn", "wfdb") if importlib.util.find_spec(m)]
print("present:", present or "none")
sys.exit(1 if present else 0)
EOF

step "medseq monitor $RECORD --runtime onnx"
cd "$WORK"
OUTPUT=$("$BIN/medseq" monitor "$BUNDLE" --record "$RECORD" --runtime onnx) \
    || fail "medseq monitor exited non-zero"
echo "$OUTPUT" | head -5
echo "$OUTPUT" | tail -1
echo "$OUTPUT" | grep -q "ALERT onset" || fail "no alert printed"
echo "$OUTPUT" | grep -q "^replayed " || fail "no replay summary printed"
"$BIN/medseq" --help >/dev/null || fail "medseq --help fails without torch"

step "edge check passed"
