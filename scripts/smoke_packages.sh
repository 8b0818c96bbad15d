#!/usr/bin/env bash
# Tries every package that scripts/package.sh wrote, as a user would, on a Debian or Ubuntu
# machine, as root (it installs the .deb with apt and removes it again at the end):
#   - lintian on the .deb; desktop-file-validate and appstreamcli on the desktop entry and the
#     AppStream metainfo;
#   - the .deb installed with apt: `wgtune --version` names this version and commit, `wgtune demo`
#     runs in an empty folder outside the checkout, and the app starts from its desktop entry's
#     Exec line under Xvfb with a window that is not blank (screenshot in target/packages-smoke/);
#   - the .rpm's files and requirements (rpm -qpl, --requires);
#   - the tar.gz installed into a fresh prefix without root, run, and uninstalled;
#   - the wheel installed into a fresh virtual environment, running the demo.
# Run it before every release commit (CI's hour has no room for the dist build it needs).
# WGTUNE_SMOKE_DEMO_STEPS (default 60, the demo's own) shortens the demos.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
packages=$repo/target/packages
smoke=$repo/target/packages-smoke
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
commit=${WGTUNE_COMMIT:-$(git rev-parse --short=10 HEAD)}
steps=${WGTUNE_SMOKE_DEMO_STEPS:-60}
app_id=io.github.wgtune.wgtune

step() { printf '\n== %s\n' "$*"; }
fail() {
    echo "FAILED: $*" >&2
    exit 1
}
only() {
    # The one file matching a pattern in target/packages.
    local matches=("$packages"/$1)
    [ ${#matches[@]} -eq 1 ] && [ -e "${matches[0]}" ] || fail "expected one $1 in $packages, found: ${matches[*]}"
    echo "${matches[0]}"
}
# A user's fresh shell: an empty folder outside the checkout, its own home and data folders.
fresh_user() {
    local home
    home=$(mktemp -d "$smoke/user.XXXX")
    mkdir -p "$home/work"
    echo "$home"
}
demo_in() {
    # Runs `$1 demo` in an empty folder with its own home; checks it ended and wrote its run there.
    local wgtune=$1 home
    home=$(fresh_user)
    (cd "$home/work" && HOME=$home XDG_DATA_HOME=$home/.local/share "$wgtune" demo --device cpu --steps "$steps") \
        > "$home/demo.log" 2>&1 || { tail -n 30 "$home/demo.log"; fail "$wgtune demo"; }
    grep -q '^Done\.' "$home/demo.log" || fail "$wgtune demo did not finish: $home/demo.log"
    grep -q 'reloaded from the export' "$home/demo.log" || fail "$wgtune demo did not reload its export"
    [ -f "$home/work/runs/demo/final/adapter_model.safetensors" ] || fail "no run in $home/work/runs/demo"
    [ -f "$home/.local/share/wgtune/"bundled-*/demo-model/model.safetensors ] || fail "the bundled demo model was not written out"
    grep -E '^   (What is the capital|  →)' "$home/demo.log" | tail -n 6
    echo "demo OK: $home/work/runs/demo"
}
check_version() {
    local out
    out=$("$1" --version)
    [ "$out" = "wgtune $version (commit $commit)" ] || fail "$1 --version printed '$out', not 'wgtune $version (commit $commit)'"
    echo "$out"
}

rm -rf "$smoke"
mkdir -p "$smoke"
deb=$(only "wgtune_${version}-1_*.deb")
rpm=$(only "wgtune-${version}-1.*.rpm")
tarball=$(only "wgtune-${version}-*-linux.tar.gz")
wheel=$(only "wgtune-${version}-*.whl")

step "tools"
export DEBIAN_FRONTEND=noninteractive
missing=()
for tool in lintian:lintian desktop-file-validate:desktop-file-utils appstreamcli:appstream rpm:rpm \
    Xvfb:xvfb xwd:x11-apps xprop:x11-utils xdotool:xdotool xwdtopnm:netpbm; do
    command -v "${tool%%:*}" > /dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" python3-venv > /dev/null
fi

step "lintian $(basename "$deb")"
lintian --info --tag-display-limit 0 "$deb" | tee "$smoke/lintian.txt" || true
if grep -q '^E:' "$smoke/lintian.txt"; then fail "lintian reports errors"; fi

step "desktop entry and AppStream metainfo"
desktop-file-validate packaging/$app_id.desktop
appstreamcli validate --no-net packaging/$app_id.metainfo.xml

step "apt install $(basename "$deb")"
apt-get install -y -qq "$deb" > "$smoke/apt.log" 2>&1 || { tail -n 20 "$smoke/apt.log"; fail "apt install"; }
[ "$(command -v wgtune)" = /usr/bin/wgtune ] || fail "wgtune is not /usr/bin/wgtune: $(command -v wgtune)"
check_version /usr/bin/wgtune
for file in /usr/share/applications/$app_id.desktop /usr/share/metainfo/$app_id.metainfo.xml \
    /usr/share/icons/hicolor/scalable/apps/$app_id.svg /usr/share/icons/hicolor/256x256/apps/$app_id.png \
    /usr/share/man/man1/wgtune.1.gz; do
    [ -f "$file" ] || fail "the .deb did not install $file"
done
desktop-file-validate /usr/share/applications/$app_id.desktop

step "wgtune demo from an empty folder (installed .deb)"
demo_in /usr/bin/wgtune

step "the app from its desktop entry, under Xvfb"
exec_line=$(sed -n 's/^Exec=//p' /usr/share/applications/$app_id.desktop)
home=$(fresh_user)
display=:97
Xvfb $display -screen 0 1280x900x24 -nolisten tcp > "$smoke/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $xvfb 2> /dev/null || true' EXIT
sleep 2
# As a menu launches it: from the home folder, the command as the entry spells it.
# (Each step execs the next, so that $app is the app's own process.)
(cd "$home" && exec env HOME="$home" XDG_DATA_HOME="$home/.local/share" DISPLAY=$display XDG_RUNTIME_DIR="$home" \
    sh -c "exec $exec_line") > "$smoke/app.log" 2>&1 &
app=$!
window=""
for _ in $(seq 60); do
    window=$(DISPLAY=$display xdotool search --name '^wgtune$' 2> /dev/null | head -n 1 || true)
    [ -n "$window" ] && break
    kill -0 $app 2> /dev/null || { cat "$smoke/app.log"; fail "the app exited"; }
    sleep 1
done
[ -n "$window" ] || { cat "$smoke/app.log"; fail "no window named wgtune appeared"; }
sleep 5
# The window carries the app id (the desktop entry's name, for the desktop to match them) and the icon.
{
    DISPLAY=$display xprop -id "$window" WM_CLASS
    DISPLAY=$display xprop -id "$window" -len 8 _NET_WM_ICON # the pixels are not shown
} | tee "$smoke/app-properties.txt"
grep -q "WM_CLASS(STRING) = .*\"$app_id\"" "$smoke/app-properties.txt" || fail "the window's WM_CLASS is not $app_id"
grep -q 'Icon (256 x 256)' "$smoke/app-properties.txt" || fail "the window has no 256-pixel icon"
DISPLAY=$display xwd -root -silent | xwdtopnm 2> /dev/null > "$smoke/app.ppm"
pnmtopng "$smoke/app.ppm" > "$smoke/app.png"
colours=$(ppmhist -noheader "$smoke/app.ppm" | wc -l)
kill $app 2> /dev/null || true
wait $app 2> /dev/null || true
echo "screenshot $smoke/app.png: $colours colours"
[ "$colours" -gt 20 ] || fail "the app's window looks blank ($colours colours)"

step "rpm $(basename "$rpm")"
rpm -qpi "$rpm" | sed -n '1,4p'
rpm -qpl "$rpm" | tee "$smoke/rpm-files.txt"
rpm -qp --requires "$rpm" | tee "$smoke/rpm-requires.txt"
rpm -qp --recommends "$rpm"
for file in /usr/bin/wgtune /usr/share/applications/$app_id.desktop /usr/share/metainfo/$app_id.metainfo.xml \
    /usr/share/icons/hicolor/512x512/apps/$app_id.png; do
    grep -qx "$file" "$smoke/rpm-files.txt" || fail "the .rpm lacks $file"
done
grep -q '^vulkan-loader' "$smoke/rpm-requires.txt" || fail "the .rpm does not require vulkan-loader"

step "tar.gz into a fresh prefix, without root"
home=$(fresh_user)
tar -C "$home" -xzf "$tarball"
install_sh=$(echo "$home"/wgtune-*/install.sh)
HOME=$home PREFIX=$home/prefix sh "$install_sh"
check_version "$home/prefix/bin/wgtune"
grep -q "^Exec=\"$home/prefix/bin/wgtune\" gui$" "$home/prefix/share/applications/$app_id.desktop" \
    || fail "the installed desktop entry does not run the installed binary"
desktop-file-validate "$home/prefix/share/applications/$app_id.desktop"
HOME=$home PREFIX=$home/prefix sh "$install_sh" --uninstall > /dev/null
# (The menu's and the icon theme's caches stay: they index whatever else is installed there.)
left=$(find "$home/prefix" -type f ! -name mimeinfo.cache ! -name icon-theme.cache | wc -l)
[ "$left" -eq 0 ] || fail "--uninstall left $left files in $home/prefix"
echo "installed and uninstalled cleanly"

step "the wheel in a fresh virtual environment"
venv=$smoke/venv
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "$wheel"
[ -x "$venv/bin/wgtune" ] || fail "the wheel put no wgtune in $venv/bin"
check_version "$venv/bin/wgtune"
demo_in "$venv/bin/wgtune"

step "apt remove wgtune"
apt-get remove -y -qq wgtune > /dev/null
[ ! -e /usr/bin/wgtune ] || fail "/usr/bin/wgtune is still there"

printf '\nAll package smoke tests passed: %s\n' "$(cd "$packages" && ls -- *.deb *.rpm *.tar.gz *.whl | tr '\n' ' ')"
