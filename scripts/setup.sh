#!/usr/bin/env bash
# setup.sh: installs the Debian packages brisk builds and tests with. Idempotent: it only calls
# apt-get when something is missing. Works as root on a fresh Debian 12 (uses sudo otherwise).
set -euo pipefail
PKGS=(build-essential cmake pkg-config libcjson-dev libpcre2-dev libutf8proc-dev
      libmicrohttpd-dev libcurl4-openssl-dev clang libclang-rt-14-dev python3
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang-format git)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
