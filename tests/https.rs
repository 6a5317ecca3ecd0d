//! HTTPS served by the process: a real TLS client over HTTP/1.1 and HTTP/2, and a certificate
//! replaced on SIGHUP without a restart.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{binary, client_for, free_port, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

const DANA: &str = "דנה לוי";

fn write_certificate(dir: &Path, ca: &TestCa) {
    std::fs::write(dir.join("server.pem"), &ca.cert_pem).expect("write");
    std::fs::write(dir.join("server.key"), &ca.key_pem).expect("write");
}

/// A config serving the demo directory over HTTPS from `dir`.
fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    config_with(dir, port, "")
}

/// [`config`] with more `[server]` keys.
fn config_with(dir: &Path, port: u16, server: &str) -> std::path::PathBuf {
    let path = dir.join("popup.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntls_cert_file = \"server.pem\"\n\
             tls_key_file = \"server.key\"\n{server}\n[directory]\nsource = \"ldif\"\n\
             ldif = \"{}/config/demo.ldif\"\nphone_attributes = [\"telephoneNumber\", \"mobile\"]",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .expect("write");
    path
}

async fn connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

async fn http1_get(addr: SocketAddr, ca_pem: &str, target: &str) -> std::io::Result<String> {
    let mut tls = connect(addr, ca_pem, &[b"http/1.1"]).await?;
    tls.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn start(dir: &Path) -> (std::process::Child, SocketAddr) {
    start_with(dir, "")
}

fn start_with(dir: &Path, server: &str) -> (std::process::Child, SocketAddr) {
    let port = free_port();
    let config = config_with(dir, port, server);
    let mut child = binary()
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    client_for(&mut child, addr);
    (child, addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_answers_over_http1_and_http2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("https");
    write_certificate(dir.path(), &ca);
    let (mut child, addr) = start(dir.path());

    let answer = http1_get(addr, &ca.ca_pem, "/popup?phone=0722776772")
        .await
        .expect("HTTPS over HTTP/1.1");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(DANA), "{answer}");

    let tls = connect(addr, &ca.ca_pem, &[b"h2", b"http/1.1"])
        .await
        .expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::Builder::new()
        .http2_only(true)
        .handshake::<_, hyper::Body>(tls)
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get("https://127.0.0.1/popup?phone=972722776772")
        .body(hyper::Body::empty())
        .expect("request");
    let response = sender.send_request(request).await.expect("HTTP/2 answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let body = hyper::body::to_bytes(response.into_body())
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&body).contains(DANA));

    // Plain HTTP on the HTTPS port gets nothing.
    let plain = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| {
            common::http(addr, "GET /popup?phone=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        })
    })
    .await
    .expect("join");
    assert!(plain.is_err(), "plain HTTP must not be answered");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_silent_after_the_tls_handshake_are_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("silent");
    write_certificate(dir.path(), &ca);
    let (mut child, addr) = start_with(dir.path(), "header_timeout_s = 2");
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let mut tls = connect(addr, &ca.ca_pem, &[alpn]).await.expect("TLS");
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(8), tls.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "{alpn:?}: still open after 8 s");
        let took = started.elapsed();
        assert!(
            (Duration::from_millis(1500)..Duration::from_secs(4)).contains(&took),
            "{:?}: closed after {took:?}",
            String::from_utf8_lossy(alpn)
        );
    }
    assert!(http1_get(addr, &ca.ca_pem, "/healthz").await.is_ok());
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_swaps_the_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (TestCa::new("first"), TestCa::new("second"));
    write_certificate(dir.path(), &first);
    let (mut child, addr) = start(dir.path());
    // A connection opened before the swap keeps working after it.
    let mut kept = connect(addr, &first.ca_pem, &[b"http/1.1"])
        .await
        .expect("TLS");
    assert!(http1_get(addr, &first.ca_pem, "/healthz").await.is_ok());
    assert!(http1_get(addr, &second.ca_pem, "/healthz").await.is_err());

    write_certificate(dir.path(), &second);
    common::signal(&child, "-HUP");
    let mut swapped = false;
    for _ in 0..50 {
        if http1_get(addr, &second.ca_pem, "/healthz").await.is_ok() {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swapped, "the new certificate was not served after SIGHUP");
    assert!(http1_get(addr, &first.ca_pem, "/healthz").await.is_err());
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = Vec::new();
    kept.read_to_end(&mut out).await.expect("read");
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));

    // A broken certificate on SIGHUP leaves the current one in place.
    std::fs::write(dir.path().join("server.pem"), "not a certificate").expect("write");
    common::signal(&child, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(http1_get(addr, &second.ca_pem, "/healthz").await.is_ok());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_bad_certificate_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("bad");
    write_certificate(dir.path(), &ca);
    std::fs::write(dir.path().join("server.key"), TestCa::new("other").key_pem).expect("write");
    let out = binary()
        .arg("--config")
        .arg(config(dir.path(), free_port()))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.tls_key_file"), "{err}");
    assert!(err.contains("does not belong"), "{err}");
}
