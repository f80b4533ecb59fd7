#!/bin/sh
# check_report_render.sh HTML PNG: renders a report.html with headless
# chromium into PNG and fails when chromium fails or the screenshot is blank
# (png_stats.py). Skips (exit 0) when chromium is not installed.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 HTML PNG" >&2
    exit 2
fi
html=$1
png=$2
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium not installed: skipping the render check"
    exit 0
fi
if [ ! -r "$html" ]; then
    echo "$html: not readable" >&2
    exit 1
fi
url="file://$(realpath "$html")"
case $png in
/*) ;;
*) png="$(pwd)/$png" ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/eddy_render.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

rm -f "$png"
HOME=$tmp timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --no-first-run --no-default-browser-check --user-data-dir="$tmp/profile" \
    --window-size=1200,1600 --screenshot="$png" "$url" >"$tmp/chromium.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
    echo "chromium failed (exit $rc) rendering $html:" >&2
    grep -v -i dbus "$tmp/chromium.log" | tail -20 >&2
    exit 1
fi
if [ ! -s "$png" ]; then
    echo "chromium wrote no screenshot $png:" >&2
    grep -v -i dbus "$tmp/chromium.log" | tail -20 >&2
    exit 1
fi
/usr/bin/python3 "$here/png_stats.py" "$png"
