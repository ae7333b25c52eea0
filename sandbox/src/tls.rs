//! HTTPS for the API: a sandbox CA and a server certificate for `127.0.0.1`/`localhost`,
//! made at start (or reused from the state dir), so clients that only send bearer tokens
//! over TLS (kubectl, helm) can act as service accounts.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::error::SandboxError;

/// The CA clients trust and the server's certificate and key, all PEM.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn tls_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Tls(e.to_string())
}

impl TlsMaterial {
    /// A fresh CA and a server certificate it signs.
    pub fn generate() -> Result<TlsMaterial, SandboxError> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "kube-sandbox-ca");
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let ca = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .map_err(tls_err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-sandbox");
        let key = KeyPair::generate().map_err(tls_err)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(tls_err)?;
        Ok(TlsMaterial {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The material kept in `dir`, or new material saved there, so kubeconfigs written
    /// before a restart keep working.
    pub fn in_dir(dir: &Path) -> Result<TlsMaterial, SandboxError> {
        let files = ["ca.crt", "server.crt", "server.key"].map(|f| dir.join(f));
        let read = |p: &Path| std::fs::read_to_string(p);
        if let (Ok(ca_pem), Ok(cert_pem), Ok(key_pem)) =
            (read(&files[0]), read(&files[1]), read(&files[2]))
        {
            return Ok(TlsMaterial {
                ca_pem,
                cert_pem,
                key_pem,
            });
        }
        let material = TlsMaterial::generate()?;
        std::fs::create_dir_all(dir).map_err(|source| SandboxError::File {
            path: dir.display().to_string(),
            source,
        })?;
        for (path, text) in
            files
                .iter()
                .zip([&material.ca_pem, &material.cert_pem, &material.key_pem])
        {
            std::fs::write(path, text).map_err(|source| SandboxError::File {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(material)
    }

    /// The CA certificate in DER, as kube-rs' `Config::root_cert` takes it.
    pub fn ca_der(&self) -> Result<Vec<u8>, SandboxError> {
        CertificateDer::from_pem_slice(self.ca_pem.as_bytes())
            .map(|c| c.to_vec())
            .map_err(tls_err)
    }

    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, SandboxError> {
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(tls_err)?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(tls_err)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(tls_err)?;
        // The server speaks HTTP/1.1 only; clients that offer h2 fall back to it.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
