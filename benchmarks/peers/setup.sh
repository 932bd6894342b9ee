#!/usr/bin/env bash
# Install the peer libraries (Keras 3 on TensorFlow CPU; PyPOTS) into their own virtual
# environments under benchmarks/.peer-venvs/, never into medseq's. Idempotent: a venv whose
# marker file exists is left alone. Usage: bash benchmarks/peers/setup.sh [keras] [pypots]
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$HERE/.peer-venvs"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"   # CPU build, so PyPOTS does not pull CUDA
KERAS_SPEC="${KERAS_SPEC:-tensorflow-cpu keras>=3}"
PYPOTS_SPEC="${PYPOTS_SPEC:-pypots}"
mkdir -p "$ROOT"

make_venv() {  # name, then pip install steps separated by '--'
  local name=$1; shift
  local venv="$ROOT/$name"
  if [[ -f "$venv/.installed" ]]; then echo "peer venv $name: present"; return; fi
  echo "peer venv $name: installing into $venv"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  local step=()
  for arg in "$@" --; do
    if [[ "$arg" == "--" ]]; then
      [[ ${#step[@]} -gt 0 ]] && "$venv/bin/pip" install --quiet "${step[@]}"
      step=()
    else
      step+=("$arg")
    fi
  done
  touch "$venv/.installed"
}

wanted=("$@")
[[ ${#wanted[@]} -eq 0 ]] && wanted=(keras pypots)
for peer in "${wanted[@]}"; do
  case "$peer" in
    # shellcheck disable=SC2086
    keras) make_venv keras $KERAS_SPEC numpy ;;
    # shellcheck disable=SC2086
    pypots) make_venv pypots $TORCH_SPEC -- $PYPOTS_SPEC numpy ;;
    *) echo "unknown peer: $peer (keras, pypots)" >&2; exit 2 ;;
  esac
done
