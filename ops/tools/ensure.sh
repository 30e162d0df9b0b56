#!/usr/bin/env bash
# Installs what the heavier test suites need (browsers, podman, Prometheus, npm packages,
# registry jars), once, from the package registries this machine reaches. `make test` runs
# it first, so a fresh machine passes; an install that cannot be done prints why and the
# tests that need it skip with that reason.
#
# Each tool has its own script, ops/tools/install-*.sh, sourced here in name order. They
# use the helpers below and must be idempotent: fast when the tool is already there.
set -uo pipefail
cd "$(dirname "$0")/../.."

TIDINGS_CACHE="${TIDINGS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tidings}"
mkdir -p "$TIDINGS_CACHE"
export TIDINGS_CACHE
_apt_updated=0

# apt_install PACKAGE... : install Debian packages that are missing (needs root).
apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "tools: cannot install ${missing[*]} (not root, no sudo)" >&2
    return 1
  fi
  local sudo=""; [ "$(id -u)" != 0 ] && sudo="sudo"
  if [ $_apt_updated = 0 ]; then
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    _apt_updated=1
  fi
  echo "tools: apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null 2>&1 \
    || { echo "tools: apt-get install ${missing[*]} failed" >&2; return 1; }
}


for script in ops/tools/install-*.sh; do
  [ -e "$script" ] || continue
  # shellcheck source=/dev/null
  ( source "$script" ) || { echo "tools: $script did not finish; tests that need it skip" >&2; }
done
exit 0
