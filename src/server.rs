//! Serving: the HTTPS certificate, the directory's first sync, the listeners, systemd
//! readiness and watchdog, reloads on SIGHUP, and a graceful stop on SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warp::Filter as _;

use crate::admin;
use crate::directory::DirectoryError;
use crate::http::budget::{default_max_connections, RESERVED_DESCRIPTORS};
use crate::http::tls::{Certificate, TlsError};
use crate::http::{self, App};
use crate::settings::{Config, ConfigError};

/// What keeps the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting cannot work on this host.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The directory cannot be used.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// The listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics listener could not be opened.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: warp::Error,
    },
    /// The admin console's listener could not be opened.
    #[error("cannot serve the admin console on {addr}: {source}")]
    Admin {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: warp::Error,
    },
    /// The HTTPS certificate or key cannot be used.
    #[error("{0}")]
    Tls(TlsError),
}

/// Serves `config` (read from `path`, or the demo); `listen` is `serve --listen`, which
/// overrides `server.listen` in every configuration read, the ones SIGHUP reads included.
pub async fn serve(
    config: Config,
    path: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<(), ServerError> {
    // The certificate first: a bad one should not wait for the directory's first sync.
    let certificate = match &config.server.tls {
        Some((cert, key)) => Some(Certificate::load(cert, key).map_err(ServerError::Tls)?),
        None => None,
    };
    let tls = match &certificate {
        Some(c) => Some(c.server_config().map_err(ServerError::Tls)?),
        None => None,
    };
    let limits = connection_limits(&config)?;
    let app = Arc::new(App::open(config.http_setup()).await?);
    reload_on_sighup(app.clone(), (path, listen), certificate, config.clone());
    let running = app.running();
    tracing::info!(source = %running.lookup.directory().describe(), "directory ready");
    if let Err(e) = running.lookup.directory().warm_up().await {
        tracing::error!(error = %e, "directory not reachable yet; lookups will answer 503 until it is");
    }
    let console = config.admin.clone().map(|settings| {
        let history = Arc::new(admin::History::default());
        history.follow(app.clone());
        Arc::new(admin::Console {
            app: app.clone(),
            settings,
            sessions: admin::Sessions::default(),
            history,
        })
    });
    let shared = console
        .as_ref()
        .filter(|c| Some(c.settings.listen) == config.metrics_listen);
    if let Some(listen) = config.metrics_listen {
        serve_metrics(app.clone(), listen, shared.cloned())?;
    }
    if let Some(console) = console.filter(|c| Some(c.settings.listen) != config.metrics_listen) {
        serve_admin(console)?;
    }
    let listen = config.server.listen;
    let source = running.lookup.directory().describe();
    drop(running);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen {
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
    tell_systemd(&format!("{addr}{}", config.server.path), &source);
    server.await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves `/metrics` on a listener of its own, with the admin console when it shares it.
fn serve_metrics(
    app: Arc<App>,
    listen: SocketAddr,
    console: Option<Arc<admin::Console>>,
) -> Result<(), ServerError> {
    let bound = match console {
        Some(console) => warp::serve(admin::routes(console).or(http::metrics_routes(app)).unify())
            .try_bind_ephemeral(listen)
            .map(|(addr, server)| (addr, tokio::spawn(server))),
        None => warp::serve(http::metrics_routes(app))
            .try_bind_ephemeral(listen)
            .map(|(addr, server)| (addr, tokio::spawn(server))),
    };
    let (addr, _) = bound.map_err(|source| ServerError::Metrics {
        addr: listen,
        source,
    })?;
    tracing::info!("metrics on http://{addr}/metrics");
    Ok(())
}

/// Serves the admin console on a listener of its own.
fn serve_admin(console: Arc<admin::Console>) -> Result<(), ServerError> {
    let listen = console.settings.listen;
    let (addr, server) = warp::serve(admin::standalone(console))
        .try_bind_ephemeral(listen)
        .map_err(|source| ServerError::Admin {
            addr: listen,
            source,
        })?;
    tracing::info!("admin console on http://{addr}/admin/");
    tokio::spawn(server);
    Ok(())
}

/// Tells systemd the service is ready (answering at `endpoint` from `source`) and, when the
/// unit has a watchdog, pings it from the runtime: a ping shows the runtime still runs tasks.
#[cfg(unix)]
fn tell_systemd(endpoint: &str, source: &str) {
    use crate::systemd;
    systemd::notify(&format!(
        "READY=1\nSTATUS=answering on {endpoint} from {source}"
    ));
    if let Some(every) = systemd::watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                systemd::notify("WATCHDOG=1");
            }
        });
    }
}

/// The connection limits of `[server]`; the descriptor limit is raised to its hard limit
/// first, and `max_connections` must leave room under it.
fn connection_limits(config: &Config) -> Result<http::ConnectionLimits, ServerError> {
    let descriptors = raise_descriptor_limit();
    let usable = descriptors.saturating_sub(RESERVED_DESCRIPTORS);
    let max_connections = match config.server.max_connections {
        None => default_max_connections(descriptors),
        Some(n) if n as u64 <= usable => n,
        Some(n) => {
            return Err(ServerError::Config(ConfigError::Invalid {
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
    source: (Option<PathBuf>, Option<SocketAddr>),
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
                reload(&app, (path.as_deref(), listen), &running).await;
            }
        });
    }
}

/// Reads the configuration file again and, when it loads, validates and (in index mode)
/// syncs, swaps it in; else logs why and keeps the running one.
async fn reload(app: &App, (path, listen): (Option<&Path>, Option<SocketAddr>), running: &Config) {
    let Some(path) = path else {
        tracing::info!("SIGHUP: the built-in demo configuration has nothing to reload");
        return;
    };
    let mut fresh = match Config::load(path) {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded; keeping the running one");
            return;
        }
    };
    if let Some(listen) = listen {
        fresh.server.listen = listen;
    }
    if fresh.server.listen != running.server.listen
        || fresh.server.tls != running.server.tls
        || fresh.metrics_listen != running.metrics_listen
    {
        tracing::warn!("SIGHUP: listen addresses and certificate paths change only with a restart");
    }
    if fresh.kerberos() != running.kerberos() {
        tracing::error!(
            "SIGHUP: configuration not reloaded: the Kerberos keytab, principal and krb5_conf \
             change only with a restart; keeping the running one"
        );
        return;
    }
    match app.reload(fresh.http_setup()).await {
        Ok(()) => tracing::info!("SIGHUP: configuration reloaded"),
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: configuration not reloaded (directory); keeping the running one"
        ),
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
