#!/usr/bin/env bash
# Runs everything CI runs: installs what the tests need (slapd, ldap-utils, Samba's AD DC,
# iproute2, MIT Kerberos headers and clang for the `kerberos` feature, faketime, Chromium and
# chromedriver for the admin console's browser tests, HAProxy for the two-replica test; wrk,
# which only `cargo bench --bench popup` uses) when missing, and cargo-deb,
# then formatting, lints and the whole test suite against real directory servers, built with
# every feature (`kerberos`). Run it as root: the Active Directory tests give Samba a network
# namespace of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || missing+=(ldap-utils)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ ! -x /usr/sbin/samba ] || ! command -v samba-tool >/dev/null 2>&1; then
    missing+=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind)
fi
[ -e /usr/include/gssapi/gssapi_krb5.h ] || missing+=(libkrb5-dev)
# libclang-dev's own link: libclang-cpp (which other packages bring) is not what bindgen loads.
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || missing+=(libclang-dev)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
# Not for the tests: `cargo bench --bench popup` drives its servers with wrk too.
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian package is built alongside the checks and tests (its own target folder, so
# neither waits for the other's lock; the tests spend minutes waiting on a Kerberos ticket),
# then installed at the end.
echo "== the Debian package, built in the background (target/deb/build-deb.log)"
mkdir -p target/deb
CARGO_TARGET_DIR=target/deb packaging/build-deb.sh >target/deb/build-deb.log 2>&1 &
deb_build=$!

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings (without and with the kerberos feature)"
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --all-targets --features kerberos -- -D warnings
echo "== cargo test --features kerberos"
cargo test --locked --features kerberos
echo "== dpkg -i the package, check it, purge it"
wait "$deb_build" || { cat target/deb/build-deb.log; exit 1; }
CARGO_TARGET_DIR=target/deb packaging/check-deb.sh
