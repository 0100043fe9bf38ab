#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when they are missing.
# xmlsec1: an XMLDSig implementation independent of Axis, for interop tests.
# curl: posts packages with a client certificate, as agency software without Axis would.
# chromium: Debian's browser, driven by Playwright for the dashboard test.
set -euo pipefail
missing=()
command -v xmlsec1 >/dev/null || missing+=(xmlsec1)
command -v curl >/dev/null || missing+=(curl)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
