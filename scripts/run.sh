#!/usr/bin/env bash
# Set up, then run the main job on the embedded default: structure the seed corpus with
# the local model (cached answers are reused), then start the chat on 127.0.0.1, which
# indexes the seeds into the on-disk Chroma store on first start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${LLMSTRUCT_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
llmstruct structure seeds --out out "$@"
exec python app.py
