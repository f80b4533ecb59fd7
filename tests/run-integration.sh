#!/bin/sh
# Runs the integration tests (pytest, Debian's /usr/bin/python3) against the
# eddy binary in $EDDY.
set -e
cd "$(dirname "$0")/integration"
# With no arguments, every test here; with some (`make test-one T=...`), only
# those: a "." beside them would run everything.
[ $# -gt 0 ] || set -- .
exec "${PY:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider "$@"
