#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages quorumkey needs, only those missing.
#   scripts/system-packages.sh build   what `npm install` needs (addon, provider)   [npm preinstall]
#   scripts/system-packages.sh test    that plus what `npm test` runs against      [.ci/run]
# As root (or with passwordless sudo) it runs apt-get non-interactively with a lock timeout;
# otherwise it prints the one command to run and fails.
set -euo pipefail

BUILD=(build-essential python3 cmake pkg-config libssl-dev openssl libgrpc-dev libprotobuf-c-dev protobuf-c-compiler)
TEST=(softhsm2 prometheus nginx haproxy curl e2fsprogs gnutls-bin chromium strace)

case "${1:-build}" in
  build) wanted=("${BUILD[@]}") ;;
  test) wanted=("${BUILD[@]}" "${TEST[@]}") ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "quorumkey: not a Debian/Ubuntu system; make sure these are installed: ${wanted[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${wanted[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" == installed ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "quorumkey: missing system packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "quorumkey: installing system packages: ${missing[*]}" >&2
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
"${apt[@]}" update -qq
# policy-rc.d keeps the packaged nginx/haproxy/prometheus services from starting on install.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
