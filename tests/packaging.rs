//! The systemd unit: systemd itself checks that it is valid and how exposed the service is.

use std::path::Path;
use std::process::Command;

fn systemd_analyze() -> Command {
    let tool = Path::new("/usr/bin/systemd-analyze");
    assert!(
        tool.exists(),
        "systemd-analyze is missing: run tests/run.sh, or apt-get install systemd"
    );
    Command::new(tool)
}

#[test]
fn the_unit_is_valid_and_hardened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/popup-ldap.service"
    ))
    .expect("unit file")
    .replace(
        "/usr/local/bin/popup-ldap",
        env!("CARGO_BIN_EXE_popup-ldap"),
    );
    let path = dir.path().join("popup-ldap.service");
    std::fs::write(&path, unit).expect("write");

    let out = systemd_analyze()
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("systemd-analyze verify");
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{complaints}");
    assert!(
        !complaints.contains("popup-ldap.service"),
        "systemd complains about the unit:\n{complaints}"
    );

    // Exposure 0-100 (shown as 0.0-10.0); the unit scores 1.4; dropping DynamicUser alone gives 1.9.
    let out = systemd_analyze()
        .args(["security", "--offline=yes", "--threshold=15"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    assert!(
        out.status.success(),
        "the unit is more exposed than allowed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
