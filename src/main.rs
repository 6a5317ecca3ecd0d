//! The `popup-ldap` command; everything it does lives in the library's `cli` module.

use std::process::ExitCode;

fn main() -> ExitCode {
    popup_ldap::cli::main()
}
