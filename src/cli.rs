//! The command line: `serve` (the default), `check-config` and `lookup`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::call::CallDetails;
use crate::config::{Config, ConfigError, LdapConfig, SourceConfig};
use crate::directory::ldap::{LdapDirectory, Probe};
use crate::directory::{Directory, DirectoryError, Entry, PhoneIndex};
use crate::http::budget::{default_max_connections, RESERVED_DESCRIPTORS};
use crate::http::tls::{Certificate, TlsError};
use crate::http::{self, App};
use crate::lookup::{Answer, Lookup, LookupError};
use crate::phone::{Caller, PhoneNormalizer};

/// Writes to stdout. A closed stdout (`popup-ldap check-config | head -1`) is not an error
/// worth a panic: what follows is simply not shown.
fn out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `println!` through [`out`].
macro_rules! say {
    ($($arg:tt)*) => {
        out(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// Values shown per attribute of a sample entry in `check-config`.
const SAMPLE_VALUES: usize = 3;

/// Exit status for a configuration that cannot work (sysexits EX_CONFIG); the systemd unit
/// does not restart on it.
const EXIT_CONFIG: u8 = 78;
/// Exit status when the directory cannot be used (sysexits EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

/// Tells a Voicenter call-centre agent who is calling, from Active Directory or LDAP.
#[derive(Debug, Parser)]
#[command(name = "popup-ldap", version, about)]
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
    /// The directory cannot be used.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// A lookup failed.
    #[error("lookup: {0}")]
    Lookup(#[from] LookupError),
    /// The listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics listener could not be opened.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: warp::Error,
    },
    /// The HTTPS certificate or key cannot be used.
    #[error("{0}")]
    Tls(TlsError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Config(_) | CliError::Tls(_) => ExitCode::from(EXIT_CONFIG),
            CliError::Directory(_) | CliError::Lookup(LookupError::Directory(_)) => {
                ExitCode::from(EXIT_UNAVAILABLE)
            }
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
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded_demo()?,
    };
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
            runtime.block_on(serve(config, path, listen))
        }
        Command::CheckConfig => runtime.block_on(check_config(&cli.config, &config)),
        Command::Lookup { phone, state, did } => {
            let call = CallDetails {
                phone: Some(phone),
                state,
                did,
                ..CallDetails::default()
            };
            runtime.block_on(lookup(&config, &call))
        }
    }
}

/// Serves `config` (read from `path`, or the demo); `listen` is `serve --listen`, which
/// overrides `server.listen` in every configuration read, the ones SIGHUP reads included.
async fn serve(
    config: Config,
    path: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
) -> Result<(), CliError> {
    // The certificate first: a bad one should not wait for the directory's first sync.
    let certificate = match &config.server.tls {
        Some((cert, key)) => Some(Certificate::load(cert, key).map_err(CliError::Tls)?),
        None => None,
    };
    let tls = match &certificate {
        Some(c) => Some(c.server_config().map_err(CliError::Tls)?),
        None => None,
    };
    let limits = connection_limits(&config)?;
    let app = Arc::new(App::from_config(&config).await?);
    reload_on_sighup(app.clone(), (path, listen), certificate, config.clone());
    let settings = app.settings();
    tracing::info!(source = %settings.lookup.directory().describe(), "directory ready");
    if let Directory::Live(ldap) = settings.lookup.directory() {
        // Connect now so the first caller does not pay for it; a failure is retried per call.
        if let Err(e) = ldap.probe(&config.directory.phone_attributes).await {
            tracing::error!(error = %e, "directory not reachable yet; lookups will answer 503 until it is");
        }
    }
    if let Some(listen) = config.metrics_listen {
        let (addr, metrics) = warp::serve(http::metrics_routes(app.clone()))
            .try_bind_ephemeral(listen)
            .map_err(|source| CliError::Metrics {
                addr: listen,
                source,
            })?;
        tracing::info!("metrics on http://{addr}/metrics");
        tokio::spawn(metrics);
    }
    let listen = config.server.listen;
    let source = settings.lookup.directory().describe();
    drop(settings);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| CliError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(listen);
    tracing::info!("listening on {scheme}://{addr}{}", config.server.path);
    tracing::info!(
        max_connections = limits.max_connections,
        http2_max_streams = limits.http2_max_streams,
        "connection limits"
    );
    let server = http::serve(app, listener, tls, limits, shutdown_signal());
    #[cfg(unix)]
    {
        use crate::systemd;
        systemd::notify(&format!(
            "READY=1\nSTATUS=answering on {addr}{} from {source}",
            config.server.path
        ));
        if let Some(every) = systemd::watchdog_interval() {
            // A ping from the runtime shows systemd the runtime still runs tasks.
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    systemd::notify("WATCHDOG=1");
                }
            });
        }
    }
    server.await;
    tracing::info!("stopped");
    Ok(())
}

/// The connection limits of `[server]`; the descriptor limit is raised to its hard limit
/// first, and `max_connections` must leave room under it.
fn connection_limits(config: &Config) -> Result<http::ConnectionLimits, CliError> {
    let descriptors = raise_descriptor_limit();
    let usable = descriptors.saturating_sub(RESERVED_DESCRIPTORS);
    let max_connections = match config.server.max_connections {
        None => default_max_connections(descriptors),
        Some(n) if n as u64 <= usable => n,
        Some(n) => {
            return Err(CliError::Config(ConfigError::Invalid {
                key: "server.max_connections".to_owned(),
                message: format!(
                    "{n} is more than this process may open: {descriptors} descriptors, \
                     {RESERVED_DESCRIPTORS} kept for the directory and logs (raise LimitNOFILE= \
                     in the unit, or lower the key)"
                ),
            }))
        }
    };
    Ok(http::ConnectionLimits {
        timeouts: config.server.timeouts,
        max_connections,
        http2_max_streams: config.server.http2_max_streams,
    })
}

/// Raises the soft limit on open descriptors to the hard limit; returns the limit in force.
fn raise_descriptor_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
            tracing::warn!(error = %e, soft, "cannot raise the open-descriptor limit");
            soft
        }
    }
}

/// On every SIGHUP: reads the HTTPS certificate again, and the configuration file; what does
/// not load or validate is logged and the running one kept.
/// `source`: the configuration file, and the `serve --listen` override applied to it.
fn reload_on_sighup(
    app: Arc<App>,
    source: (Option<PathBuf>, Option<std::net::SocketAddr>),
    certificate: Option<Arc<Certificate>>,
    running: Config,
) {
    let (path, listen) = source;
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: nothing will be reloaded");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if let Some(certificate) = &certificate {
                    match certificate.reload() {
                        Ok(()) => tracing::info!("SIGHUP: HTTPS certificate reloaded"),
                        Err(e) => tracing::error!(
                            error = %e,
                            "SIGHUP: certificate not reloaded; serving the previous one"
                        ),
                    }
                }
                let Some(path) = &path else {
                    tracing::info!("SIGHUP: the built-in demo configuration has nothing to reload");
                    continue;
                };
                let mut fresh = match Config::load(path) {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: configuration not reloaded; keeping the running one");
                        continue;
                    }
                };
                if let Some(listen) = listen {
                    fresh.server.listen = listen;
                }
                if fresh.server.listen != running.server.listen
                    || fresh.server.tls != running.server.tls
                    || fresh.metrics_listen != running.metrics_listen
                {
                    tracing::warn!(
                        "SIGHUP: listen addresses and certificate paths change only with a restart"
                    );
                }
                match app.reload(&fresh).await {
                    Ok(()) => tracing::info!("SIGHUP: configuration reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: configuration not reloaded (directory); keeping the running one"
                    ),
                }
            }
        });
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: finishing requests in flight");
    #[cfg(unix)]
    crate::systemd::notify("STOPPING=1");
}

async fn check_config(path: &Option<PathBuf>, config: &Config) -> Result<(), CliError> {
    let name = path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in demo configuration".to_owned());
    say!("configuration {name}: valid");
    if let Some((cert, key)) = &config.server.tls {
        let certificate = Certificate::load(cert, key).map_err(CliError::Tls)?;
        certificate.server_config().map_err(CliError::Tls)?;
        say!("  https             certificate and key load and match");
    }
    say!(
        "  endpoint          http://{}{}",
        config.server.listen,
        config.server.path
    );
    say!(
        "  phone attributes  {}",
        config.directory.phone_attributes.join(", ")
    );
    let entries = match &config.directory.source {
        SourceConfig::Ldif(data) => {
            say!(
                "  source            {}",
                Directory::open(config).await?.describe()
            );
            crate::directory::ldif::load(data).map_err(DirectoryError::from)?
        }
        SourceConfig::Ldap(ldap) => check_ldap(config, ldap).await?,
    };
    say!(
        "{}",
        crate::hygiene::examine(&entries, &config.directory.phone_attributes, &config.phone)
    );
    say!("OK");
    Ok(())
}

/// Connects, binds and searches a sample, then reads every eligible entry once: the hygiene
/// report's entries, and in index mode what the index would hold. Nothing is saved (no state
/// file) and no sync thread starts.
async fn check_ldap(config: &Config, ldap: &LdapConfig) -> Result<Vec<Entry>, CliError> {
    let attrs = &config.directory.phone_attributes;
    let client = LdapDirectory::new(ldap, config.wanted_attributes())?;
    say!("  source            {}", client.describe());
    let probe = client.probe(attrs).await?;
    say_probe(config, &probe);
    let entries = client.read_all(attrs).await?;
    if ldap.index.is_some() {
        let index = PhoneIndex::build(entries.clone(), attrs, &config.phone);
        say!(
            "  index             {} entries with {} distinct numbers (entries with a number \
             of some country)",
            index.entries(),
            index.numbers()
        );
    }
    Ok(entries)
}

/// What the sample search of `check-config` found.
fn say_probe(config: &Config, probe: &Probe) {
    say!("directory: connected to {}", probe.server);
    match &probe.bound_as {
        Some(dn) => say!("  bound as          {dn}"),
        None => say!("  bound             anonymously"),
    }
    say!("  sample search     {}", probe.filter);
    say!(
        "  found             {} entries with a phone attribute{}",
        probe.sample.len(),
        if probe.more { " (and more)" } else { "" }
    );
    for entry in &probe.sample {
        say!("    {}", entry.dn());
        let mut shown: Vec<(String, usize)> = Vec::new();
        for (attr, value, keys) in phone_values(entry, config) {
            match shown.iter_mut().find(|(a, _)| *a == attr) {
                Some((_, n)) if *n >= SAMPLE_VALUES => *n += 1,
                Some((_, n)) => {
                    *n += 1;
                    say!("      {attr}: {value:?} -> {keys}");
                }
                None => {
                    say!("      {attr}: {value:?} -> {keys}");
                    shown.push((attr, 1));
                }
            }
        }
        for (attr, n) in shown.iter().filter(|(_, n)| *n > SAMPLE_VALUES) {
            say!("      {attr}: ... {} more values", n - SAMPLE_VALUES);
        }
    }
    if probe.sample.is_empty() {
        say!(
            "  warning: no entry under the base DN has a phone attribute; check \
             directory.base_dn, directory.filter and directory.phone_attributes"
        );
    }
}

async fn lookup(config: &Config, call: &CallDetails) -> Result<(), CliError> {
    let lookup = Lookup::from_config(config).await?;
    let answer = lookup.answer(call).await;
    let text = match &answer {
        Ok(a) => explain(config, &lookup, call, a),
        Err(e) if e.is_bad_request() => format!(
            "caller            {:?}\nanswer            HTTP 400 {}\n",
            call.phone.as_deref().unwrap_or(""),
            http::reply::error_json(&e.to_string())
        ),
        Err(_) => String::new(),
    };
    out(&text);
    answer.map(|_| ()).map_err(CliError::from)
}

/// The `lookup` report: everything an admin needs to tune filters and mapping.
fn explain(config: &Config, lookup: &Lookup, call: &CallDetails, answer: &Answer) -> String {
    let mut out = String::new();
    let raw = call.phone.as_deref().unwrap_or("");
    let t = &answer.trace;
    // Writing into a String cannot fail.
    let _ = match &t.caller {
        Some(Caller::Number(n)) => writeln!(
            out,
            "caller            {raw:?} -> {}\nread as           {}\nforms             e164 {}  \
             national {}  digits {}  significant {}",
            n.key, n.reading, n.forms.e164, n.forms.national, n.forms.digits, n.forms.significant
        ),
        _ => writeln!(out, "caller            {raw:?} -> withheld number"),
    };
    let _ = writeln!(out, "source            {}", lookup.directory().describe());
    if let Some(state) = &t.skipped_state {
        let _ = writeln!(
            out,
            "state             {state:?} is not in lookup.states: answered without a lookup"
        );
    }
    if let Some(filter) = &t.filter {
        let _ = writeln!(out, "filter            {filter}");
    }
    if let Some(server) = &t.server {
        let _ = writeln!(out, "server            {server}");
    }
    let _ = writeln!(
        out,
        "entries           {} match{}",
        t.matches.len(),
        if t.rejected.is_empty() {
            String::new()
        } else {
            format!(
                ", {} returned by the filter but not holding the number",
                t.rejected.len()
            )
        }
    );
    for (i, m) in t.matches.iter().enumerate() {
        let country = config.phone.entry_country(|a| m.entry.values(a).next());
        let _ = writeln!(
            out,
            "  {}{} {}\n      matched {}: {:?}, read in {} ({})",
            i + 1,
            if i == 0 { " (best)" } else { "" },
            m.entry.dn(),
            m.attribute,
            m.value,
            country.region.as_ref(),
            country
                .attribute
                .map_or("the default region".to_owned(), |a| format!("from {a}"))
        );
    }
    for entry in &t.rejected {
        let _ = writeln!(out, "  rejected {}", entry.dn());
        for (attr, value, keys) in phone_values(entry, config) {
            let _ = writeln!(out, "      {attr}: {value:?} -> {keys}");
        }
    }
    let _ = writeln!(
        out,
        "answer            HTTP 200 {}",
        http::reply::popup_json(&answer.popup)
    );
    out
}

/// Each phone value of an entry with the numbers it normalises to, and the country its
/// national values were read in.
fn phone_values(entry: &crate::directory::Entry, config: &Config) -> Vec<(String, String, String)> {
    let phone: &PhoneNormalizer = &config.phone;
    let country = phone.entry_country(|a| entry.values(a).next());
    let read_in = match country.attribute {
        Some(attr) => format!("read in {} (from {attr})", country.region.as_ref()),
        None => format!("read in {} (default region)", country.region.as_ref()),
    };
    let mut rows = Vec::new();
    for attr in &config.directory.phone_attributes {
        for value in entry.values(attr) {
            let keys: Vec<String> = phone
                .readings_in(value, country.region)
                .iter()
                .map(|(k, how)| format!("{k} ({how})"))
                .collect();
            let keys = if keys.is_empty() {
                "no number".to_owned()
            } else {
                format!("{}; {read_in}", keys.join(", "))
            };
            rows.push((attr.clone(), value.to_owned(), keys));
        }
    }
    rows
}
