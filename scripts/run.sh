#!/usr/bin/env bash
# The default lab tour.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/lvslab run
