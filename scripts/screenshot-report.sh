#!/usr/bin/env bash
# Take a PNG screenshot of a report page with headless Chromium, for checking how it looks.
#   scripts/screenshot-report.sh REPORT.html OUTPUT.png [WIDTHxHEIGHT]
# The size defaults to 1280x2400 pixels. Installs the Debian package chromium with apt-get
# when no chromium is on PATH (that needs root). Chromium opens only the file:// URL of the
# report, and the flags below turn off its background requests (updates, sync, metrics,
# safe browsing) and resolve every host name to "not found". Where `unshare --net` works
# (root, or unprivileged user namespaces), Chromium also runs in an empty network
# namespace. Without one, Chromium 156 still connect()s a UDP socket to a public IPv6
# address to look up a route. That sends no packet, as strace showed.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 REPORT.html OUTPUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
report="$1"
output="$2"
size="${3:-1280x2400}"
if [ ! -f "$report" ]; then
  echo "error: report file $report not found; write it first with jobs/report.py --output $report" >&2
  exit 2
fi
if ! [[ "$size" =~ ^[0-9]+x[0-9]+$ ]]; then
  echo "error: invalid size $size; expected WIDTHxHEIGHT in pixels, for example 1280x2400" >&2
  exit 2
fi

browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: chromium is not installed; install it (sudo apt-get install -y chromium) and run again" >&2
    exit 2
  fi
  echo "screenshot: installing chromium with apt-get" >&2
  apt-get install -y --no-install-recommends chromium >&2
  browser="$(command -v chromium)"
fi

report_url="file://$(realpath "$report")"
output_path="$(realpath -m "$output")"
mkdir -p "$(dirname "$output_path")"
# A throw-away profile, so no earlier profile's settings or extensions take part.
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT

isolate=()
if unshare --net true 2>/dev/null; then
  isolate=(unshare --net)
fi

${isolate[@]+"${isolate[@]}"} "$browser" --headless --disable-gpu --no-sandbox --hide-scrollbars \
  --user-data-dir="$profile" \
  --disable-background-networking --disable-component-update --disable-sync --disable-default-apps \
  --no-first-run --no-default-browser-check --metrics-recording-only --disable-domain-reliability --no-pings \
  --disable-breakpad --disable-client-side-phishing-detection --disable-features=OptimizationHints,MediaRouter,Translate,NetworkTimeServiceQuerying,SafeBrowsing \
  --safebrowsing-disable-auto-update --disable-extensions --host-resolver-rules="MAP * ~NOTFOUND" \
  --window-size="${size/x/,}" --screenshot="$output_path" "$report_url" >&2

if [ ! -s "$output_path" ]; then
  echo "error: chromium wrote no screenshot to $output_path; rerun with its output above to see why" >&2
  exit 1
fi
echo "$output_path"
