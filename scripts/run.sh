#!/usr/bin/env bash
# Set up, then run the main job on the embedded default: structure the seed corpus with
# the local model (cached answers are reused), index those records into the on-disk Chroma
# store (unchanged documents are skipped by content hash), then start the chat on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${LLMSTRUCT_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
llmstruct structure seeds --out out "$@"
llmstruct index out --sources seeds
exec python app.py
