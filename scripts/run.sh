#!/usr/bin/env bash
# Set up, then run the main job on the embedded default: structure the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${LLMSTRUCT_VENV:-.venv}/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
llmstruct structure seeds --out out --rules-only "$@"
