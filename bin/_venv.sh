# Sourced by bin/serve and bin/test: make sure .venv exists (Python 3.12) with the requirements.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

pick_python() {
  for cand in "${CALIB_PYTHON:-}" python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3.12 /usr/bin/python3.12 python3.11 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  echo "need Python 3.12 (or 3.11); set CALIB_PYTHON" >&2; return 1
}

stamp="$VENV/.requirements.sha"
want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  PY="$(pick_python)"
  echo "[setup] virtual environment in .venv with $("$PY" --version)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  "$VENV/bin/python" -c 'import chalice, moto, pg8000, pgserver, numpy, astropy, matplotlib' \
    || { echo "[setup] requirements failed to install" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$ROOT/.local/mplconfig}"
cd "$ROOT"
