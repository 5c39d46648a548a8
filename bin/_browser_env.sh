# Sourced by bin/test (or run: bin/_browser_env.sh [--bench]): the npm packages the browser test
# (and bench/bench_pages.py) drive Debian's chromium with, installed into .local/node.
#   axe-core        accessibility rules run inside the pages (the test's no-violation check)
#   playwright-core drives /usr/bin/chromium over CDP (no browser download: it brings none)
#   lighthouse      only with --bench: performance / accessibility / best-practices scores
# Versions are pinned so every machine runs the same rules; a second run installs nothing.
_browser_env() {
  local root node_dir want pkg name version have
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  node_dir="$root/.local/node"
  want="axe-core@4.14.1 playwright-core@1.65.1"
  [ "${1:-}" = "--bench" ] && want="$want lighthouse@12.8.2"
  export CALIB_NODE_MODULES="$node_dir/node_modules"
  if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "[setup] installing nodejs and npm (Debian packages) for the browser test"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >/dev/null 2>&1 \
        || { echo "[setup] npm could not be installed; the browser test will fail" >&2; return 0; }
    else
      echo "[setup] npm is missing (apt-get install nodejs npm); the browser test will fail" >&2; return 0
    fi
  fi
  # playwright-core 1.65 needs Node 20 (this machine kind's); Debian 12's own nodejs is 18
  if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 20 ]; then
    want="${want/playwright-core@1.65.1/playwright-core@1.49.1}"
  fi
  local missing=""
  for pkg in $want; do
    name="${pkg%@*}"; version="${pkg##*@}"
    have="$(node -p "require('$node_dir/node_modules/$name/package.json').version" 2>/dev/null || true)"
    [ "$have" = "$version" ] || missing="$missing $pkg"
  done
  [ -n "$missing" ] || return 0
  echo "[setup] npm packages for the browser checks:$missing"
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{"private": true}' > "$node_dir/package.json"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error \
    $missing >/dev/null || echo "[setup] npm install failed; the browser test will fail" >&2
}
if [ "${BASH_SOURCE[0]}" = "$0" ]; then _browser_env "$@"; else _browser_env; fi
unset -f _browser_env
