#!/usr/bin/env bash
# Installs the package built by build-deb.sh with dpkg and checks it as an admin would find
# it, then removes it: the binary and its features, the conffile, the unit (systemd-analyze
# verify; not enabled, not started), the man page and completions, the demo answering a
# lookup, `dpkg -r` keeping the configuration and `dpkg -P` removing it. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: $*" >&2; exit 1; }
deb=$(ls -t "${CARGO_TARGET_DIR:-target}"/debian/popup-ldap_*.deb | head -1)
[ -f "$deb" ] || fail "no package in target/debian: run packaging/build-deb.sh"
dpkg -i "$deb" >/tmp/popup-ldap-dpkg.log 2>&1 || { cat /tmp/popup-ldap-dpkg.log; fail "dpkg -i failed"; }
grep -q "neither enabled nor started" /tmp/popup-ldap-dpkg.log || fail "postinst did not say how to start it"

version=$(popup-ldap --version)
[ "$version" = "popup-ldap $(dpkg-deb -f "$deb" Version | sed 's/-[0-9]*$//') (features: kerberos)" ] \
    || fail "unexpected --version: $version"
dpkg-query -W -f='${Conffiles}\n' popup-ldap | grep -q "/etc/popup-ldap/popup-ldap.toml" \
    || fail "/etc/popup-ldap/popup-ldap.toml is not a conffile"
unit=$(dpkg -L popup-ldap | grep '/systemd/system/popup-ldap.service$') || fail "no unit installed"
grep -q '^ExecStart=/usr/bin/popup-ldap ' "$unit" || fail "the unit does not start /usr/bin/popup-ldap"
SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
if [ -d /run/systemd/system ]; then
    ! systemctl is-enabled --quiet popup-ldap || fail "installing enabled the unit"
    ! systemctl is-active --quiet popup-ldap || fail "installing started the service"
fi
[ -f /usr/share/man/man8/popup-ldap.8.gz ] || fail "no man page"
zcat /usr/share/man/man8/popup-ldap.8.gz | grep -q "check\\\\-config" || fail "the man page lacks check-config"
[ -f /usr/share/bash-completion/completions/popup-ldap ] || fail "no bash completion"
[ -f /usr/share/doc/popup-ldap/examples/openldap.example.toml ] || fail "no examples"
popup-ldap lookup 0722776772 | grep -q '"CLIENTNAME":"דנה לוי"' || fail "the demo lookup did not answer"

dpkg -r popup-ldap >/dev/null
[ -f /etc/popup-ldap/popup-ldap.toml ] || fail "dpkg -r removed the configuration"
[ ! -e /usr/bin/popup-ldap ] || fail "dpkg -r left the binary"
dpkg -P popup-ldap >/dev/null
[ ! -e /etc/popup-ldap ] || fail "dpkg -P left /etc/popup-ldap"
echo "check-deb: $deb installs, answers, removes and purges as it should"
