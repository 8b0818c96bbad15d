#!/bin/sh
# Installs wgtune from this folder into ~/.local (or PREFIX), without root:
#   ./install.sh                 the binary in ~/.local/bin, the app in the desktop's menu
#   PREFIX=/opt/wgtune ./install.sh
#   ./install.sh --uninstall     removes exactly what it installed
# It replaces an earlier wgtune there, and refuses to replace any other file of those names.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix=${PREFIX:-"$HOME/.local"}
app_id=io.github.wgtune.wgtune

files="bin/wgtune
share/applications/$app_id.desktop
share/metainfo/$app_id.metainfo.xml
share/man/man1/wgtune.1
share/icons/hicolor/scalable/apps/$app_id.svg"
for size in 16 24 32 48 64 128 256 512; do
    files="$files
share/icons/hicolor/${size}x${size}/apps/$app_id.png"
done

refresh_menus() {
    # Menus and icon caches pick the change up at once where these tools exist.
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$prefix/share/applications" 2>/dev/null || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
    echo "$files" | while read -r file; do
        if [ -e "$prefix/$file" ]; then rm -f "$prefix/$file" && echo "removed $prefix/$file"; fi
    done
    refresh_menus
    exit 0
fi
if [ $# -gt 0 ]; then
    echo "usage: $0 [--uninstall]   (PREFIX=DIR to install elsewhere than ~/.local)" >&2
    exit 2
fi

existing="$prefix/bin/wgtune"
if [ -e "$existing" ] && ! "$existing" --version 2>/dev/null | grep -q '^wgtune '; then
    echo "error: $existing exists and is not wgtune; move it away first" >&2
    exit 1
fi

echo "$files" | while read -r file; do
    mkdir -p "$(dirname "$prefix/$file")"
    cp "$here/$file" "$prefix/$file.new"
    mv -f "$prefix/$file.new" "$prefix/$file"
done
chmod 755 "$prefix/bin/wgtune"
# The menu entry runs this binary wherever it is, on the PATH or not.
sed "s|^Exec=wgtune |Exec=\"$prefix/bin/wgtune\" |" "$here/share/applications/$app_id.desktop" > "$prefix/share/applications/$app_id.desktop"
refresh_menus

echo "installed $("$prefix/bin/wgtune" --version) into $prefix"
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "note: $prefix/bin is not on your PATH; add it (for example in ~/.profile) to type wgtune in a terminal" ;;
esac
echo "try: wgtune demo    (or open wgtune from your desktop's menu)"
