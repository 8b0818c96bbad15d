#!/usr/bin/env bash
# Builds wgtune's Linux packages from one optimized build (Cargo's `dist` profile) into
# target/packages/:
#   wgtune_VERSION-1_ARCH.deb                  apt install ./wgtune_*.deb           (cargo-deb)
#   wgtune-VERSION-1.ARCH.rpm                  dnf install ./wgtune-*.rpm           (cargo-generate-rpm)
#   wgtune-VERSION-ARCH-linux.tar.gz           ./install.sh into ~/.local, no root
#   wgtune-VERSION-py3-none-*.whl              pip / pipx / uv tool install         (maturin)
#   SHA256SUMS
# It installs the packaging tools it lacks (cargo install, pip). A clean build of the dist profile
# takes a while on two cores: see BENCHMARKS.md. scripts/smoke_packages.sh then tries each package
# as a user would. macOS and Windows packages come from .github/workflows/release.yml.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/packages
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(uname -m)
# The same commit for every step, so that no step rebuilds for a different one.
WGTUNE_COMMIT=${WGTUNE_COMMIT:-$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)}
export WGTUNE_COMMIT

step() { printf '\n== %s\n' "$*"; }

step "packaging tools"
command -v cargo-deb > /dev/null || cargo install --locked cargo-deb
command -v cargo-generate-rpm > /dev/null || cargo install --locked cargo-generate-rpm
command -v maturin > /dev/null || python3 -m pip install --quiet 'maturin>=1.9,<2'

step "dist build of wgtune $version (commit $WGTUNE_COMMIT)"
cargo build --profile dist --locked
binary=target/dist/wgtune
"$binary" --version

rm -rf "$out"
mkdir -p "$out"

step ".deb"
cargo deb --no-build --profile dist --output "$out/"

step ".rpm"
cargo generate-rpm --profile dist --output "$out/"

step "tar.gz"
name="wgtune-$version-$arch-linux"
stage="target/packages-stage/$name"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/share/applications" "$stage/share/metainfo" "$stage/share/man/man1" \
    "$stage/share/icons/hicolor/scalable/apps"
cp "$binary" "$stage/bin/"
cp packaging/io.github.wgtune.wgtune.desktop "$stage/share/applications/"
cp packaging/io.github.wgtune.wgtune.metainfo.xml "$stage/share/metainfo/"
cp packaging/wgtune.1 "$stage/share/man/man1/"
cp packaging/icons/io.github.wgtune.wgtune.svg "$stage/share/icons/hicolor/scalable/apps/"
cp -r packaging/icons/hicolor/. "$stage/share/icons/hicolor/"
cp packaging/install.sh README.md LICENSE "$stage/"
tar -C "$(dirname "$stage")" --owner=0 --group=0 -czf "$out/$name.tar.gz" "$name"

step "wheel"
# maturin builds the same dist profile (nothing is compiled again but the binary's link) and
# names the wheel for the oldest manylinux its symbols allow.
maturin build --profile dist --locked --out "$out"

step "checksums"
(cd "$out" && sha256sum -- * > SHA256SUMS && cat SHA256SUMS)
ls -l "$out"
