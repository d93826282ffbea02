#!/usr/bin/env bash
# Installs a pinned schemathesis into .local/tools/schemathesis-<ver>-py<ver> (idempotent) and prints the binary's path.
# CPython before 3.11.8 / 3.12.2 shares one AST recursion counter between threads (cpython gh-106905), and
# hypothesis parses lambdas with ast.parse while generating: with several workers that raises
# "SystemError: AST constructor recursion depth mismatch" inside schemathesis. The newest interpreter
# with the fix is preferred; the test also runs a single worker so an older one is safe.
set -euo pipefail
VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON=""
PYENV_PYTHONS=""
if command -v pyenv >/dev/null 2>&1; then
  PYENV_PYTHONS="$(ls -d "$(pyenv root)"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV || true)"
fi
for candidate in $PYENV_PYTHONS python3.13 python3.12 python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
    'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 12, 2) or (3, 11, 8) <= v < (3, 12) else 1)' 2>/dev/null; then
    PYTHON="$candidate"; break
  fi
done
PYTHON="${PYTHON:-python3}"
PY_VERSION="$("$PYTHON" -c 'import platform; print(platform.python_version())')"
VENV="$ROOT/.local/tools/schemathesis-$VERSION-py$PY_VERSION"
if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "$VENV/bin/st"
