#!/bin/sh
# Build distcc-auto_VERSION_ARCH.deb from an already built binary with
# Debian's own tools (dpkg-deb): `make deb` runs it. Usage:
#   sh packaging/deb.sh BINARY OUTDIR
# The package: /usr/bin/distcc-auto, the shell files in
# /usr/share/distcc-auto/, the man page, completions where Debian's
# bash-completion, zsh and fish look, copyright and changelog.
set -eu
bin=$1
out=$2
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
# The newest glibc symbol version the binary needs.
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -Vu | tail -n 1)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
pkg=$root/pkg
doc=$pkg/usr/share/doc/distcc-auto
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/distcc-auto" "$pkg/usr/share/man/man1" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
    "$pkg/usr/share/fish/vendor_completions.d" "$doc"
install -m 755 "$bin" "$pkg/usr/bin/distcc-auto"
strip --strip-unneeded --remove-section=.comment "$pkg/usr/bin/distcc-auto"
install -m 644 shell/distcc.sh shell/distcc.zsh shell/distcc.fish "$pkg/usr/share/distcc-auto/"
gzip -9n < man/distcc-auto.1 > "$pkg/usr/share/man/man1/distcc-auto.1.gz"
install -m 644 shell/completions/distcc-auto.bash "$pkg/usr/share/bash-completion/completions/distcc-auto"
install -m 644 shell/completions/_distcc-auto "$pkg/usr/share/zsh/vendor-completions/_distcc-auto"
install -m 644 shell/completions/distcc-auto.fish "$pkg/usr/share/fish/vendor_completions.d/distcc-auto.fish"
install -m 644 packaging/copyright "$doc/copyright"
gzip -9n < packaging/changelog > "$doc/changelog.gz"
chmod 644 "$pkg/usr/share/man/man1/distcc-auto.1.gz" "$doc/changelog.gz"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@GLIBC@/$glibc/" \
    packaging/control > "$pkg/DEBIAN/control"
(cd "$pkg" && find usr -type f | sort | xargs md5sum) > "$pkg/DEBIAN/md5sums"
chmod 644 "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/control"
mkdir -p "$out"
deb=$out/distcc-auto_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
