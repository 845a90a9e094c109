//! `kv cert`: a CA, a server certificate and a client certificate, as PEM
//! files, for `kv serve --tls-cert` and the clients' `--tls-ca` and
//! `--tls-client-cert`. Also what `kv serve` knows of its own certificate:
//! whether it has expired.

use clap::Args;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wirestack::tls::rustls::pki_types::CertificateDer;

/// `kv cert`'s flags.
#[derive(Debug, Args)]
pub(crate) struct CertArgs {
    /// Write the PEM files into this directory (made if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
    /// A DNS name or IP address the server certificate is for (repeat for more; default: localhost, 127.0.0.1, ::1).
    #[arg(long = "name", value_name = "NAME")]
    pub(crate) names: Vec<String>,
    /// The client certificate's name (its common name).
    #[arg(long, value_name = "NAME", default_value = "kv-client")]
    pub(crate) client_name: String,
    /// How many days the certificates are valid.
    #[arg(long, value_name = "DAYS", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub(crate) days: u32,
    /// Replace files that already exist (without it, an existing file stops `kv cert` before it writes any).
    #[arg(long)]
    pub(crate) force: bool,
}

/// The files `kv cert` writes, in `dir`.
const FILES: [&str; 6] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "client.pem",
    "client-key.pem",
];

/// Makes the CA and both certificates and writes them; returns what to
/// tell the user.
pub(crate) fn run(args: &CertArgs) -> Result<String, String> {
    let names = if args.names.is_empty() {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()]
    } else {
        args.names.clone()
    };
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("cannot create {}: {e}", args.dir.display()))?;
    if !args.force {
        if let Some(taken) = FILES.iter().map(|f| args.dir.join(f)).find(|p| p.exists()) {
            return Err(format!(
                "{} exists: nothing was written. Choose another --dir, or pass --force to replace the files",
                taken.display()
            ));
        }
    }
    let failed = |what: &str, e: rcgen::Error| format!("cannot make the {what}: {e}");

    let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(DnType::CommonName, "kv CA");
    set_validity(&mut ca, args.days);
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| failed("CA", e))?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |names: Vec<String>, common: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().map_err(|e| failed("key", e))?;
        let mut params = CertificateParams::new(names)
            .map_err(|e| format!("{e}: a --name must be a DNS name or an IP address"))?;
        params.distinguished_name.push(DnType::CommonName, common);
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, args.days);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| failed("certificate", e))?;
        Ok::<_, String>((cert.pem(), key.serialize_pem()))
    };
    let first = names.first().cloned().unwrap_or_default();
    let server = leaf(names.clone(), &first, ExtendedKeyUsagePurpose::ServerAuth)?;
    let client = leaf(
        vec![args.client_name.clone()],
        &args.client_name,
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;
    let contents = [
        ca_cert.pem(),
        issuer.key().serialize_pem(),
        server.0,
        server.1,
        client.0,
        client.1,
    ];
    for (file, content) in FILES.iter().zip(contents) {
        write_private(&args.dir.join(file), content.as_bytes(), args.force)?;
    }
    let at = |f: &str| args.dir.join(f).display().to_string();
    Ok(format!(
        "wrote a CA, a server certificate for {} and a client certificate for {}, valid {} days, in {} \
         (mode 0600):\n  \
         kv serve --tls-cert {} --tls-key {} [--tls-client-ca {}]\n  \
         kv ping --tls-ca {} [--tls-client-cert {} --tls-client-key {}]\n\
         Keep ca-key.pem apart: whoever has it can make certificates the server and clients trust.\n",
        names.join(", "),
        args.client_name,
        args.days,
        args.dir.display(),
        at("server.pem"),
        at("server-key.pem"),
        at("ca.pem"),
        at("ca.pem"),
        at("client.pem"),
        at("client-key.pem"),
    ))
}

/// Valid from the start of yesterday (clocks differ a little) to the end
/// of the day `days` from now.
fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let day = |secs: u64| {
        let (y, m, d) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
        date_time_ymd(y, m, d)
    };
    params.not_before = day(now.saturating_sub(86_400));
    params.not_after = day(now + u64::from(days) * 86_400 + 86_400);
}

/// The (year, month, day) of a count of days since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        i32::try_from(y).unwrap_or(i32::MAX),
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

/// Writes `content` to `path`, readable by its owner only (0600 on Unix).
fn write_private(path: &Path, content: &[u8], replace: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = options.open(path).map_err(cannot)?;
    #[cfg(unix)]
    {
        // A replaced file keeps its old mode: set it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot)?;
    }
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(cannot)
}

/// A warning if the first certificate of `chain` (the server's own) has
/// expired or is not valid yet; `None` if it is valid now or cannot be read.
pub(crate) fn validity_warning(chain: &[CertificateDer<'_>], path: &Path) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?).ok()?;
    let validity = cert.validity();
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()?
            .as_secs(),
    )
    .ok()?;
    if validity.not_after.timestamp() < now {
        return Some(format!(
            "the certificate {} expired on {}: clients will refuse it. Make a new one (`kv cert`)",
            path.display(),
            validity.not_after
        ));
    }
    if validity.not_before.timestamp() > now {
        return Some(format!(
            "the certificate {} is not valid until {}: clients will refuse it until then. Check this \
             host's clock",
            path.display(),
            validity.not_before
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_since_the_epoch_are_calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_789), (2026, 12, 2));
    }
}
