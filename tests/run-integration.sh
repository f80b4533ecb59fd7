#!/bin/sh
# Runs the integration tests (pytest, Debian's /usr/bin/python3) against the
# eddy binary in $EDDY.
set -e
cd "$(dirname "$0")/integration"
exec "${PY:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider "$@" .
