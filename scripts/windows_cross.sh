#!/usr/bin/env bash
# Builds wgtune.exe and wgtune-gui.exe for Windows (x86_64-pc-windows-gnu) on a Debian machine
# without rustup's Windows target, and tries them under Wine: `--version`, then the demo on the
# CPU backend. Debian's rustc-web compiles the standard library for the target from rust-web-src
# (-Zbuild-std, allowed by RUSTC_BOOTSTRAP), MinGW links. The release workflow builds the real
# Windows packages with MSVC on a Windows runner; this is the check that the code builds and runs
# there at all. Run as root (it installs the toolchain with apt). Output: target/windows-gnu/.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq rustc-web cargo-web rust-web-src lld gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine64 > /dev/null

target=x86_64-pc-windows-gnu
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/windows-gnu
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
/usr/bin/cargo build --release --locked --target $target -Zbuild-std=std,panic_abort --features gui-launcher

out=$PWD/target/windows-gnu/$target/release
file "$out/wgtune.exe" "$out/wgtune-gui.exe"
ls -l "$out/wgtune.exe" "$out/wgtune-gui.exe"

# MinGW's C++ runtime (tokenizers' Oniguruma and suffix arrays are C and C++), beside the program
# as a Windows installer would put it. The MSVC build of the release workflow needs none.
mingw=$(dirname "$(x86_64-w64-mingw32-gcc -print-libgcc-file-name)")
cp "$mingw/libstdc++-6.dll" "$mingw/libgcc_s_seh-1.dll" "$out/"
# Rust's standard library takes its random numbers from bcryptprimitives.dll (Windows 10 and
# later); Wine 8, Debian 12's, lacks it. A stand-in over RtlGenRandom, for Wine only.
x86_64-w64-mingw32-gcc -shared -O2 -o "$out/bcryptprimitives.dll" scripts/wine/bcryptprimitives.c -ladvapi32

export WINEDEBUG=-all WINEPREFIX=${WINEPREFIX:-$PWD/target/windows-gnu/wine}
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
# The first start creates the Wine prefix and ends there (status 53 on a 64-bit-only Wine).
"$wine" cmd /c exit 0 > /dev/null 2>&1 || true
"$wine" "$out/wgtune.exe" --version
# The demo from an empty folder, as on a Windows machine without a GPU driver Wine can use.
work=$(mktemp -d)
(cd "$work" && "$wine" "$out/wgtune.exe" demo --device cpu --steps "${WGTUNE_DEMO_STEPS:-60}")
