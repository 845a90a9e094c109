//! A throwaway PKI for the TLS tests, made with rcgen in the test: a CA,
//! server certificates (valid, expired, for another name), a client
//! certificate, and PEM files of them for the command-line tests.

#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wirestack::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wirestack::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A certificate chain and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Identity {
    pub fn parts(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.chain.clone(), self.key.clone_key())
    }
}

/// A CA that signs the other certificates.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a CA certificate");
        Pki {
            ca_der: cert.der().clone(),
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, names: &[&str], client: bool, expired: bool) -> Identity {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("a signed certificate");
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Identity {
        self.issue(&["localhost", "127.0.0.1"], false, false)
    }

    /// A server certificate that expired in 2001.
    pub fn expired_server(&self) -> Identity {
        self.issue(&["localhost", "127.0.0.1"], false, true)
    }

    /// A server certificate for another name only.
    pub fn other_name_server(&self) -> Identity {
        self.issue(&["db.example"], false, false)
    }

    /// A client certificate.
    pub fn client(&self) -> Identity {
        self.issue(&["client.example"], true, false)
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("the CA is a usable root");
        roots
    }

    /// What a client that trusts this CA uses (with a client certificate if given).
    pub fn client_config(&self, identity: Option<&Identity>) -> Arc<ClientConfig> {
        wirestack::tls::client_config(self.roots(), identity.map(Identity::parts)).expect("a client config")
    }

    /// A server presenting `identity`; with `client_ca`, mTLS against it.
    pub fn server_config(identity: &Identity, client_ca: Option<&Pki>) -> Arc<ServerConfig> {
        let (chain, key) = identity.parts();
        wirestack::tls::server_config(chain, key, client_ca.map(Pki::roots)).expect("a server config")
    }
}

/// PEM files of a CA and a server identity in `dir`: (ca, cert, key).
pub fn write_pem(dir: &Path, pki: &Pki, server: &Identity) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, cert, key) = (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    std::fs::write(&cert, &server.cert_pem).unwrap();
    std::fs::write(&key, &server.key_pem).unwrap();
    (ca, cert, key)
}

/// What `openssl req -x509 -subj /CN=localhost` makes, and a user first
/// tries: one self-signed CA certificate for `localhost`, given to the
/// server as its own and to the client as its CA.
pub fn self_signed_ca_for_localhost() -> (Identity, Arc<ClientConfig>) {
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).expect("a usable root");
    let identity = Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let client = wirestack::tls::client_config(roots, None).expect("a client config");
    (identity, client)
}
