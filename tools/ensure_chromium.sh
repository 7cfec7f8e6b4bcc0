#!/usr/bin/env bash
# Debian's Chromium for the browser test of lesson 06 (tests/test_serve.py); `make test` and `make unit` run this.
# Found: nothing to do. Missing: installed with apt-get when run as root; otherwise this prints the one command to
# run and exits 0, so the other tests still run and the browser test fails with the same advice.
set -uo pipefail
for name in chromium chromium-browser google-chrome; do  # the names tests/browser_cdp.py looks for
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no Chromium and no apt-get here: install Chromium (or Google Chrome) so that \`chromium\` is on PATH," \
       "or the browser test in tests/test_serve.py fails." >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "note: Chromium is missing, so the browser test in tests/test_serve.py will fail." \
       "Install it once with: sudo bash tools/ensure_chromium.sh" >&2
  exit 0
fi
echo "Installing Debian's chromium package for the browser test (apt-get)..." >&2
if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then
  echo "warning: apt-get could not install chromium; the browser test will fail and say what to run." >&2
fi
exit 0
