#!/usr/bin/env bash
# Idempotent install of llama-cpp-python (the `llamacpp` extra) into the project venv.
# It is source-only on PyPI, so it is compiled here (5-8 min on 2 cores). The build is
# portable on purpose: a native build (AVX512/AMX) segfaulted on the first decode on these
# machines. The wheel is kept in the llmstruct cache, keyed on version and flags, so a
# fresh venv on the same machine installs it in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${LLMSTRUCT_VENV:-.venv}"
VERSION="0.3.36"
FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
CACHE="${LLMSTRUCT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llmstruct}"
KEY=$(printf '%s %s' "$VERSION" "$FLAGS" | sha256sum | cut -c1-12)
WHEELS="$CACHE/wheels/llama-cpp-python-$VERSION-$KEY"

[ -x "$VENV/bin/python" ] || { echo "setup_llamacpp: no venv at $VENV; run scripts/setup.sh first" >&2; exit 1; }
PYBIN="$VENV/bin/python"
pip_q() { "$PYBIN" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

have=$("$PYBIN" -c "import llama_cpp; print(llama_cpp.__version__)" 2>/dev/null || true)
if [ "$have" = "$VERSION" ] && [ -f "$WHEELS/.portable" ]; then
  echo "setup_llamacpp: ok (llama-cpp-python $VERSION already in $VENV)"
  exit 0
fi

start=$(date +%s)
if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
  mkdir -p "$WHEELS"
  echo "setup_llamacpp: compiling llama-cpp-python $VERSION (portable flags, takes minutes)"
  CMAKE_ARGS="$FLAGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" FORCE_CMAKE=1 \
    pip_q wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python -w "$WHEELS" "llama-cpp-python==$VERSION"
fi
pip_q install -q --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl
pip_q install -q "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl
touch "$WHEELS/.portable"
"$PYBIN" -c "import llama_cpp; assert llama_cpp.__version__ == '$VERSION'"
echo "setup_llamacpp: ok (llama-cpp-python $VERSION in $VENV, $(( $(date +%s) - start )) s)"
