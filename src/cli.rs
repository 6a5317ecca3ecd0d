//! The command line: `serve` (the default), `check-config` and `lookup`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::call::CallDetails;
use crate::check::{self, CheckError};
use crate::explain::{self, ExplainError};
use crate::lookup::LookupError;
use crate::server::{self, ServerError};
use crate::settings::{Config, ConfigError};

/// Exit status for a configuration that cannot work (sysexits EX_CONFIG); the systemd unit
/// does not restart on it.
const EXIT_CONFIG: u8 = 78;
/// Exit status when the directory cannot be used (sysexits EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

/// `--version`: the version and the optional features built in.
#[cfg(feature = "kerberos")]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: kerberos)");
/// `--version`: the version and the optional features built in.
#[cfg(not(feature = "kerberos"))]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (features: none)");

/// Tells a Voicenter call-centre agent who is calling, from Active Directory or LDAP.
#[derive(Debug, Parser)]
#[command(name = "popup-ldap", version = VERSION, about)]
pub struct Cli {
    /// The TOML configuration file. Without it, the demo configuration and directory
    /// compiled into the binary are used.
    #[arg(long, short, global = true, env = "POPUP_LDAP_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer Voicenter's popup requests over HTTP (the default).
    Serve {
        /// Listen here instead of `server.listen`, such as 127.0.0.1:9000.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate the configuration, then connect, bind and run one search, saying what worked.
    CheckConfig,
    /// Report on the directory's phone data, and write an LDIF that rewrites values into E.164.
    Hygiene {
        /// Write the repair LDIF here (ldapmodify change records, to review and apply).
        #[arg(long)]
        repair_ldif: Option<PathBuf>,
    },
    /// Write the man page and shell completions into a folder (for packaging).
    #[command(hide = true)]
    GenerateDocs {
        /// Where to write `popup-ldap.8` and `completions/`.
        dir: PathBuf,
    },
    /// Look one number up and explain the answer: forms, filter, entries, matched values, JSON.
    Lookup {
        /// The caller's number, as Voicenter would send it.
        phone: String,
        /// The call state, as Voicenter would send it.
        #[arg(long)]
        state: Option<String>,
        /// The dialled number, for templates that use `{call.did}`.
        #[arg(long)]
        did: Option<String>,
    },
}

/// Everything that stops a command, mapped to an exit status by [`main`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// `serve` could not start.
    #[error(transparent)]
    Serve(#[from] ServerError),
    /// `check-config` found a fault.
    #[error(transparent)]
    Check(#[from] CheckError),
    /// `lookup` failed.
    #[error(transparent)]
    Lookup(#[from] ExplainError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The man page or completions could not be written.
    #[error("cannot write the documentation: {0}")]
    Docs(std::io::Error),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_)
            | CliError::Serve(ServerError::Config(_) | ServerError::Tls(_))
            | CliError::Check(CheckError::Tls(_)) => ExitCode::from(EXIT_CONFIG),
            CliError::Serve(ServerError::Directory(_))
            | CliError::Check(CheckError::Directory(_))
            | CliError::Lookup(
                ExplainError::Open(_) | ExplainError::Answer(LookupError::Directory(_)),
            ) => ExitCode::from(EXIT_UNAVAILABLE),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Parses the command line, runs the command and reports errors on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("popup-ldap: {e}");
            e.exit_code()
        }
    }
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    if let Some(Command::GenerateDocs { dir }) = &cli.command {
        use clap::CommandFactory as _;
        return crate::docs::generate(Cli::command(), dir).map_err(CliError::Docs);
    }
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_demo()?,
    };
    // Before any thread exists: it sets process-wide environment variables.
    if let Some(kerberos) = config.kerberos() {
        crate::directory::ldap::kerberos::prepare(kerberos);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::Serve { listen } => {
            let mut config = config;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            let path = cli.config.clone();
            let _log = crate::logging::init(&config.log.level);
            if cli.config.is_none() {
                tracing::warn!("no --config given: serving the built-in demo directory");
            }
            Ok(runtime.block_on(server::serve(config, path, listen))?)
        }
        Command::CheckConfig => Ok(runtime.block_on(check::check_config(&cli.config, &config))?),
        Command::GenerateDocs { .. } => Ok(()),
        Command::Hygiene { repair_ldif } => {
            Ok(runtime.block_on(check::hygiene(&config, repair_ldif.as_deref()))?)
        }
        Command::Lookup { phone, state, did } => {
            let call = CallDetails {
                phone: Some(phone),
                state,
                did,
                ..CallDetails::default()
            };
            Ok(runtime.block_on(explain::lookup(config.lookup_setup(), &call))?)
        }
    }
}
