#!/usr/bin/env bash
# Renders the app icon's PNG sizes from the SVG (needs rsvg-convert: apt-get install librsvg2-bin).
# The PNGs are committed; run this only after changing the SVG.
set -euo pipefail
cd "$(dirname "$0")"
for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "hicolor/${size}x${size}/apps"
    rsvg-convert -w "$size" -h "$size" io.github.wgtune.wgtune.svg -o "hicolor/${size}x${size}/apps/io.github.wgtune.wgtune.png"
done
