//! The man page (`popup-ldap(8)`) and shell completions, generated from the command line's
//! definition for the Debian package (`packaging/build-deb.sh`).

use std::path::Path;

use clap_complete::Shell;

/// Writes `popup-ldap.8` and `completions/` (bash, zsh, fish) into `dir`.
pub fn generate(mut command: clap::Command, dir: &Path) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .render(&mut page)?;
    std::fs::write(dir.join("popup-ldap.8"), page)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "popup-ldap", &completions)?;
    }
    Ok(())
}
