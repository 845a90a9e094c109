//! Certificate errors as sentences: what is wrong, and what to do about it.
//!
//! rustls says `invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`;
//! a user needs to read that the certificate they gave the server is a CA
//! certificate, and that `kv cert` makes the pair they need. [`explain`]
//! finds the rustls error in an error's chain and says it so;
//! [`TlsConnector`](super::TlsConnector) puts that sentence in front of
//! the handshake errors it returns ([`CertificateRejected`]).

use std::error::Error as StdError;
use std::io;
use tokio_rustls::rustls::{AlertDescription, CertificateError, Error as RustlsError};

/// A TLS handshake failed over a certificate: the sentence that says what
/// is wrong and what to do, with rustls' error as its source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{explanation} ({source})")]
pub struct CertificateRejected {
    /// What is wrong, and what to run.
    pub explanation: String,
    /// rustls' own error.
    #[source]
    pub source: RustlsError,
}

/// What is wrong with a certificate, as a sentence, if `error` or an error
/// in its chain is a rustls certificate error (an `io::Error` that carries
/// one included); `None` for any other error.
///
/// ```
/// use wirestack::tls::{explain, rustls};
///
/// let error = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
/// assert!(explain(&error).unwrap().contains("not signed by a CA this client trusts"));
/// ```
pub fn explain(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(rustls) = error.downcast_ref::<RustlsError>() {
            return sentence(rustls).map(str::to_owned);
        }
        if let Some(rejected) = error.downcast_ref::<CertificateRejected>() {
            return Some(rejected.explanation.clone());
        }
        // An io::Error's source() skips the error it carries: look inside.
        if let Some(inner) = error.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(found) = explain(inner) {
                return Some(found);
            }
        }
        next = error.source();
    }
    None
}

/// `error`, with the sentence of [`explain`] in front of a certificate
/// error it carries (as a [`CertificateRejected`]); any other as it is.
pub(crate) fn explained(error: io::Error) -> io::Error {
    let Some(rustls) = error.get_ref().and_then(|e| e.downcast_ref::<RustlsError>()) else {
        return error;
    };
    match sentence(rustls) {
        Some(explanation) => io::Error::new(
            error.kind(),
            CertificateRejected {
                explanation: explanation.to_owned(),
                source: rustls.clone(),
            },
        ),
        None => error,
    }
}

fn sentence(error: &RustlsError) -> Option<&'static str> {
    Some(match error {
        RustlsError::InvalidCertificate(certificate) => return certificate_sentence(certificate),
        RustlsError::NoCertificatesPresented => {
            "the client presented no certificate, and this server requires one (mutual TLS, \
             --tls-client-ca): give the client --tls-client-cert and --tls-client-key"
        }
        RustlsError::AlertReceived(AlertDescription::CertificateRequired) => {
            "the server requires a client certificate (mutual TLS): give --tls-client-cert and \
             --tls-client-key, a certificate signed by the CA the server trusts (`kv cert` makes one)"
        }
        RustlsError::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown,
        ) => {
            "the other side refused this side's certificate: it must be signed by the CA the other \
             side trusts (--tls-client-ca on a server, --tls-ca on a client); `kv cert` makes a \
             matching set"
        }
        RustlsError::AlertReceived(AlertDescription::CertificateExpired) => {
            "the other side says this side's certificate has expired: make a new one (`kv cert`)"
        }
        _ => return None,
    })
}

fn certificate_sentence(error: &CertificateError) -> Option<&'static str> {
    Some(match error {
        CertificateError::UnknownIssuer => {
            "the peer's certificate is not signed by a CA this client trusts: give the certificate \
             of the CA that signed it (--tls-ca CA.pem, or --tls-client-ca on a server); `kv cert` \
             makes a CA and the certificates it signs"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the peer's certificate has expired: make a new one (`kv cert`) and restart with it"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the peer's certificate is not valid yet: check the clocks of both hosts, or make a new \
             certificate (`kv cert`)"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the peer's certificate is not made for the name this client checks: connect with a name \
             it carries (--tls-server-name NAME), or make one for this name (`kv cert --name NAME`)"
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the peer's certificate is not made for this use (a server's must allow server \
             authentication, a client's client authentication): `kv cert` makes both kinds"
        }
        CertificateError::Revoked => "the peer's certificate has been revoked: make a new one (`kv cert`)",
        CertificateError::BadEncoding | CertificateError::BadSignature => {
            "the peer's certificate is damaged or its signature does not verify: make a new one \
             (`kv cert`)"
        }
        CertificateError::Other(other) => {
            let what = format!("{other:?}");
            if what.contains("CaUsedAsEndEntity") {
                "this certificate is a CA certificate, used as the peer's own: a server (or client) \
                 needs a certificate signed by a CA, not the CA itself, which is what a single \
                 `openssl req -x509` makes. Run `kv cert` for a CA and a server certificate, then \
                 give the server --tls-cert server.pem --tls-key server-key.pem and the client \
                 --tls-ca ca.pem"
            } else if what.contains("EndEntityUsedAsCa") {
                "a certificate that is not a CA's is used as one: give --tls-ca (or --tls-client-ca) \
                 the CA's certificate (ca.pem from `kv cert`), not the server's or a client's"
            } else {
                return None;
            }
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sentence_says_what_to_do() {
        for error in [
            CertificateError::UnknownIssuer,
            CertificateError::Expired,
            CertificateError::NotValidYet,
            CertificateError::NotValidForName,
            CertificateError::InvalidPurpose,
            CertificateError::BadSignature,
        ] {
            let said = explain(&RustlsError::InvalidCertificate(error.clone())).expect("explained");
            assert!(
                said.contains("`kv cert") || said.contains("--tls"),
                "{error:?}: {said}"
            );
        }
        let missing = RustlsError::AlertReceived(AlertDescription::CertificateRequired);
        assert!(explain(&missing).unwrap().contains("--tls-client-cert"));
        assert!(explain(&io::Error::other("unrelated")).is_none());
    }

    #[test]
    fn a_rustls_error_inside_an_io_error_is_explained_and_kept() {
        let rustls = RustlsError::InvalidCertificate(CertificateError::Expired);
        let io = explained(io::Error::new(io::ErrorKind::InvalidData, rustls.clone()));
        assert_eq!(io.kind(), io::ErrorKind::InvalidData);
        let text = io.to_string();
        assert!(text.contains("has expired") && text.contains("kv cert"), "{text}");
        assert!(
            text.contains(&rustls.to_string()),
            "rustls' words are kept: {text}"
        );
        assert!(explain(&io).unwrap().contains("has expired"));
    }
}
