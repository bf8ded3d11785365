#!/usr/bin/env bash
# Runs one end-to-end test module with Debian's python3 (where python3-slixmpp lives).
set -euo pipefail
module="$1"
cd "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/integration"
exec /usr/bin/python3 e2e_main.py "$module"
