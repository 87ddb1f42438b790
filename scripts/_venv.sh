# Sourced by scripts/serve and scripts/test: create or refresh the project's virtualenv.
# The venv is rebuilt when pyproject.toml changes (a stamp file holds its hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PUERTA_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.puerta-stamp"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)-$1"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { echo "Puerta needs Python 3.11 or newer ($PYTHON is older)" >&2; exit 1; }
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "setting up $VENV ..." >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  if [ "$1" = dev ]; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
  else
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT"
  fi
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
