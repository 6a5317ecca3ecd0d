//! HTTPS for the endpoint: rustls (ring) with HTTP/2 and HTTP/1.1 offered by ALPN, and a
//! certificate that can be replaced while running (read again on SIGHUP) without dropping
//! connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// A certificate and key that cannot be used, with the file at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The served certificate, replaceable while running.
#[derive(Debug)]
pub struct Certificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl Certificate {
    /// Loads the PEM certificate chain and private key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Certificate {
            current: ArcSwap::from_pointee(read(cert_file, key_file)?),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
        }))
    }

    /// Reads the files again; on failure the current certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.cert_file, &self.key_file)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }

    /// The rustls configuration serving this certificate, offering h2 and http/1.1.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError(format!("server.tls_cert_file {}: {e}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "server.tls_cert_file {} holds no PEM certificate",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError(format!("server.tls_key_file {}: {e}", key_file.display())))?;
    let signing = default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError(format!("server.tls_key_file {}: {e}", key_file.display())))?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        TlsError(format!(
            "server.tls_key_file {} does not belong to server.tls_cert_file {}: {e}",
            key_file.display(),
            cert_file.display()
        ))
    })?;
    Ok(certified)
}
