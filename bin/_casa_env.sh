#!/usr/bin/env bash
# The real-CASA test's own virtualenv, .local/casa-venv: casatools + casatasks from PyPI, never in .venv
# (they bring numpy, scipy and matplotlib releases of their own), the measures tables CASA needs, and
# .local/casa-venv/bin/casa-python, which runs that python with what this machine needs.
# Run it: it prints casa-python's path (the last stdout line; progress and errors go to stderr) and
# exits non-zero when CASA cannot be set up. Sourced: exports CASA_PYTHON, or CASA_SETUP_ERROR.
# Reruns are instant: a stamp of this file and the Python used keeps the venv until either changes.

_casa_env_setup() (
  set -euo pipefail
  local casa_version=6.7.6.14 casadata_version=2025.9.22 six_version=1.17.0
  local root venv log stamp want py tmp
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  venv="$root/.local/casa-venv"
  log="$root/.local/casa-venv-setup.log"
  mkdir -p "$root/.local"
  exec 9>"$root/.local/casa-venv.lock"
  flock 9  # parallel test runs in one worktree wait for one setup

  # casatools 6.7.6 has wheels for CPython 3.12 only (3.11 stops at 6.7.0)
  py=""
  for cand in "${CASA_BASE_PYTHON:-}" python3.12 "$HOME/.pyenv/versions/3.12"*/bin/python3.12 /usr/bin/python3.12; do
    if [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 \
        && "$cand" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      # the interpreter itself, not a venv's or a shim's, so the stamp is the same whoever runs this
      py="$("$cand" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))')"
      break
    fi
  done
  [ -n "$py" ] || { echo "[casa] needs CPython 3.12 with venv (casatools wheels); set CASA_BASE_PYTHON" >&2; return 1; }

  stamp="$venv/.setup.sha"
  want="$( { cat "${BASH_SOURCE[0]}"; "$py" --version; echo "$py"; } | sha256sum | cut -d' ' -f1)"
  if [ -x "$venv/bin/casa-python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$venv/bin/casa-python"; return 0
  fi

  echo "[casa] setting up .local/casa-venv: casatools/casatasks $casa_version from PyPI ($("$py" --version))" >&2
  : >"$log"
  run() { "$@" >>"$log" 2>&1 || { echo "[casa] failed: $* -- last lines of $log:" >&2; tail -n 15 "$log" >&2; return 1; }; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  rm -rf "$venv"
  run "$py" -m venv "$venv"
  # casatasks imports six without declaring it
  run "$venv/bin/python" -m pip install --disable-pip-version-check \
    "casatools==$casa_version" "casatasks==$casa_version" "six==$six_version"

  # Measures data: the geodetic tables (IERS, leap seconds, observatories; 9 MB) of NRAO's casadata
  # wheel (350 MB, not kept). Empty stand-ins for casarundata's other folders tell casaconfig this is a
  # data folder it does not manage, so it neither complains nor tries to update it.
  run "$venv/bin/python" -m pip download --disable-pip-version-check --no-deps "casadata==$casadata_version" -d "$tmp"
  run "$venv/bin/python" - "$tmp"/casadata-*.whl "$venv/casadata" <<'EOF'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
prefix = "casadata/__data__/"
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith(prefix + "geodetic/") and not m.endswith("/")]
    for m in members:
        z.extract(m, out)
os.rename(os.path.join(out, prefix, "geodetic"), os.path.join(out, "geodetic"))
for sub in ("alma", "catalogs", "demo", "ephemerides", "gui", "nrao"):
    os.makedirs(os.path.join(out, sub), exist_ok=True)
os.removedirs(os.path.join(out, prefix))  # the emptied casadata/__data__/
assert os.path.isfile(os.path.join(out, "geodetic", "IERSeop2000", "table.dat")), "no IERS table in the wheel"
EOF
  # CASA's site config: that data folder, no automatic downloads (the network may be PyPI only)
  run "$venv/bin/python" -c 'import sys; open(sys.argv[1], "w").write(
"measurespath = %r\nmeasures_auto_update = False\ndata_auto_update = False\n" % sys.argv[2])' \
    "$venv/casasiteconfig.py" "$venv/casadata"

  write_wrapper() {  # $1: libraries to preload, or empty
    {
      echo '#!/usr/bin/env bash'
      echo '# Written by bin/_casa_env.sh: the CASA test venv python with its site config (no data downloads).'
      [ -z "$1" ] || echo "# casatools' wheel bundles a libssl wanting OpenSSL 3.2 and a libldap wanting MD2: the system's OpenSSL and an MD2 stub go first."
      printf 'export CASASITECONFIG=%q\n' "$venv/casasiteconfig.py"
      [ -z "$1" ] || printf 'export LD_PRELOAD=%q"${LD_PRELOAD:+:$LD_PRELOAD}"\n' "$1"
      printf 'exec %q "$@"\n' "$venv/bin/python"
    } >"$venv/bin/casa-python"
    chmod +x "$venv/bin/casa-python"
  }
  imports() { (cd "$tmp" && HOME="$tmp" "$venv/bin/casa-python" -c 'import casatools, casatasks') >>"$log" 2>&1; }

  write_wrapper ""
  if ! imports; then
    # Debian 12's OpenSSL is 3.0 and built without MD2: preload it (its libssl replaces the bundled one)
    # with a stub EVP_md2 that libldap links to but CASA never calls.
    local ssl crypto
    ssl="$(ldconfig -p | awk '$1 == "libssl.so.3" {print $NF; exit}')"
    crypto="$(ldconfig -p | awk '$1 == "libcrypto.so.3" {print $NF; exit}')"
    [ -n "$ssl" ] && [ -n "$crypto" ] || { echo "[casa] casatools does not import and no system libssl.so.3 to preload (see $log)" >&2; return 1; }
    printf 'const void *EVP_md2(void) { return 0; }\n' >"$tmp/md2.c"
    printf 'OPENSSL_3.0.0 { global: EVP_md2; local: *; };\n' >"$tmp/md2.map"
    run gcc -shared -fPIC -O2 -Wl,--version-script="$tmp/md2.map" -o "$venv/lib/libmd2stub.so" "$tmp/md2.c"
    write_wrapper "$venv/lib/libmd2stub.so:$ssl:$crypto"
    imports || { echo "[casa] casatools/casatasks do not import -- last lines of $log:" >&2; tail -n 15 "$log" >&2; return 1; }
  fi
  echo "$want" >"$stamp"
  echo "[casa] ready: $venv/bin/casa-python" >&2
  echo "$venv/bin/casa-python"
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  if CASA_PYTHON="$(_casa_env_setup)"; then
    export CASA_PYTHON; unset CASA_SETUP_ERROR
  else
    export CASA_SETUP_ERROR="bin/_casa_env.sh could not set up CASA (see .local/casa-venv-setup.log)"; unset CASA_PYTHON
  fi
else
  _casa_env_setup
fi
