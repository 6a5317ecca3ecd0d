#!/usr/bin/env bash
# Builds the Debian package: target/debian/popup-ldap_<version>-1_<arch>.deb (under
# $CARGO_TARGET_DIR when set), with the
# `kerberos` feature (needs libkrb5-dev and libclang-dev), the man page and shell completions
# generated from the command line's definition, and the unit pointed at /usr/bin.
# Needs cargo-deb (`cargo install cargo-deb`; this script installs it when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
cargo build --release --locked --features kerberos
# The generated files live outside the target folder: cargo-deb reads target/ paths as its own.
out=packaging/generated
rm -rf "$out" && mkdir -p "$out/completions"
"${CARGO_TARGET_DIR:-target}/release/popup-ldap" generate-docs "$out"
gzip -9n "$out/popup-ldap.8"
sed 's|/usr/local/bin/popup-ldap|/usr/bin/popup-ldap|' systemd/popup-ldap.service > "$out/popup-ldap.service"
cargo deb --no-build --locked "$@"
