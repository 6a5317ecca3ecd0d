//! Secrets (bind password, token) from systemd credentials, files or the environment.

use std::path::Path;

use super::{invalid, ConfigError};
use crate::secret::Secret;

/// Where a secret may be read from: `<name>_file`, `<name>_env` or `<name>_credential`.
pub(super) struct SecretSource<'a> {
    pub(super) section: &'a str,
    pub(super) name: &'a str,
    pub(super) file: Option<&'a str>,
    pub(super) env: Option<&'a str>,
    pub(super) credential: Option<&'a str>,
}

impl SecretSource<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{}_{suffix}", self.section, self.name)
    }

    pub(super) fn is_set(&self) -> bool {
        self.file.is_some() || self.env.is_some() || self.credential.is_some()
    }

    /// The secret, `None` when no source is set; more than one source is an error.
    pub(super) fn read(&self, base: &Path) -> Result<Option<Secret>, ConfigError> {
        let set = [self.file, self.env, self.credential]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if set > 1 {
            return Err(invalid(
                &self.key("file"),
                format!(
                    "set only one of {name}_file, {name}_env and {name}_credential",
                    name = self.name
                ),
            ));
        }
        if let Some(file) = self.file {
            return read_secret(&self.key("file"), &base.join(file)).map(Some);
        }
        if let Some(var) = self.env {
            return std::env::var(var)
                .map(|v| Some(Secret::new(v)))
                .map_err(|_| {
                    invalid(
                        &self.key("env"),
                        format!("environment variable {var} is not set"),
                    )
                });
        }
        let Some(name) = self.credential else {
            return Ok(None);
        };
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            invalid(
                &self.key("credential"),
                "CREDENTIALS_DIRECTORY is not set: this key works under systemd with \
                 LoadCredential=; use the _file key elsewhere",
            )
        })?;
        read_secret(&self.key("credential"), &Path::new(&dir).join(name)).map(Some)
    }
}

fn read_secret(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = Secret::new(text);
    if secret.expose().is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}
