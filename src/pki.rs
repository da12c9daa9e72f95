//! Development and test PKI: a local CA, server and client certificates, the CRL and the other key files — the library the server (dev PKI on first start), `cadrex pki`, seed and the tests share.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
pub use rcgen::ExtendedKeyUsagePurpose;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PKCS_ED25519, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::parse_x509_crl;
use x509_parser::prelude::FromDer;

use crate::domain::agency::Agency;
use crate::identity::{parse_uri, serial_hex};

/// The division `init` issues its first set of client certificates for.
pub const DEFAULT_DIVISION: &str = "360821";

/// Besides the requested division, `init` covers a sibling county and the all-covering
/// `000000`, so jurisdiction tests have callers inside and outside each other's reach.
const EXTRA_DIVISIONS: [&str; 2] = ["360802", "360000"];

const CA_VALIDITY: Duration = Duration::days(3650);
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Backdating absorbs clock skew between the machine that issues and the one that verifies.
const BACKDATE: Duration = Duration::hours(1);
const CRL_VALIDITY: Duration = Duration::days(30);

/// Paths inside a PKI dir.
#[derive(Clone, Debug)]
pub struct PkiPaths {
    pub dir: PathBuf,
}

impl PkiPaths {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// True when a CA has already been created here.
    pub fn exists(&self) -> bool {
        self.ca_cert().exists()
    }

    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    pub fn log_signing_key(&self) -> PathBuf {
        self.dir.join("log-signing.key")
    }

    /// The log-signing public key, PEM `PUBLIC KEY` (Ed25519 SubjectPublicKeyInfo).
    pub fn log_signing_pub(&self) -> PathBuf {
        self.dir.join("log-signing.pub")
    }

    pub fn informant_key(&self) -> PathBuf {
        self.dir.join("informant.key")
    }

    /// The digest key (see `crate::digest`).
    pub fn digest_key(&self) -> PathBuf {
        self.dir.join("digest.key")
    }

    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    pub fn clients_dir(&self) -> PathBuf {
        self.dir.join("clients")
    }

    pub fn client_cert(&self, agency: &str, division: &str) -> PathBuf {
        self.clients_dir().join(format!("{agency}-{division}.crt"))
    }

    pub fn client_key(&self, agency: &str, division: &str) -> PathBuf {
        self.clients_dir().join(format!("{agency}-{division}.key"))
    }

    fn stem_cert(&self, stem: &str) -> PathBuf {
        self.clients_dir().join(format!("{stem}.crt"))
    }

    fn stem_key(&self, stem: &str) -> PathBuf {
        self.clients_dir().join(format!("{stem}.key"))
    }
}

/// Low-level issuing for tests: arbitrary URI SANs, validity window and subject CN.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub uris: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub common_name: String,
}

/// Creates a new PKI in `dir`: CA, server pair, log-signing key, informant key, empty CRL,
/// and client pairs for every agency in `division`, `360802` and `360000`.
pub fn init(dir: &Path, division: &str) -> anyhow::Result<()> {
    if !crate::domain::division::is_valid(division) {
        bail!("division {division:?} is not a 6-digit code");
    }
    let paths = PkiPaths::new(dir);
    if paths.exists() {
        bail!(
            "{} already exists; refusing to overwrite an existing CA",
            paths.ca_cert().display()
        );
    }
    fs::create_dir_all(paths.clients_dir())
        .with_context(|| format!("creating {}", paths.clients_dir().display()))?;

    let now = OffsetDateTime::now_utc();
    let ca_key = new_key()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = dn("cadrex development CA");
    // No intermediates exist, so forbid any CA below this one.
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now - BACKDATE;
    ca_params.not_after = now + CA_VALIDITY;
    ca_params.serial_number = Some(random_serial()?);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
    write_private(&paths.ca_key(), ca.key().serialize_pem().as_bytes())?;
    write_public(&paths.ca_cert(), ca.pem().as_bytes())?;

    let server_key = new_key()?;
    let mut server_params = leaf_params("cadrex server", now - BACKDATE, now + LEAF_VALIDITY)?;
    server_params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &ca)?;
    write_private(&paths.server_key(), server_key.serialize_pem().as_bytes())?;
    write_public(&paths.server_cert(), server_cert.pem().as_bytes())?;

    // PKCS#8 "PRIVATE KEY" PEM, the form ring's Ed25519KeyPair::from_pkcs8 reads back.
    let log_key = KeyPair::generate_for(&PKCS_ED25519)?;
    write_private(&paths.log_signing_key(), log_key.serialize_pem().as_bytes())?;
    // What other agencies and `cadrex log verify --public-key` need; the
    // private key stays with the exchange.
    write_public(
        &paths.log_signing_pub(),
        crate::access_log::public_key_pem(log_key.public_key_raw()).as_bytes(),
    )?;

    let mut informant = [0u8; 32];
    fill_random(&mut informant)?;
    write_private(
        &paths.informant_key(),
        format!("k1:{}\n", hex::encode(informant)).as_bytes(),
    )?;

    write_digest_key(&paths.digest_key())?;

    let crl = crl_params(1, Vec::new(), KeyIdMethod::Sha256, now, CRL_VALIDITY).signed_by(&ca)?;
    write_atomic(&paths.crl(), crl.pem()?.as_bytes())?;

    let mut divisions = vec![division];
    divisions.extend(EXTRA_DIVISIONS.iter().copied().filter(|d| *d != division));
    for div in divisions {
        for agency in Agency::ALL {
            let agency = agency.as_str();
            let uri = format!("urn:cadrex:system:{agency}:{div}:{agency}-sys");
            let spec = ClientSpec {
                uris: vec![uri],
                not_before: now - BACKDATE,
                not_after: now + LEAF_VALIDITY,
                common_name: format!("{agency}-sys"),
            };
            sign_client(
                &ca,
                &paths,
                &format!("{agency}-{div}"),
                &spec,
                &[ExtendedKeyUsagePurpose::ClientAuth],
            )?;
        }
    }
    Ok(())
}

/// Issues one more client certificate, `clients/{agency}-{division}-{system}.crt|.key`,
/// signed by the CA in `dir`. Returns (certificate path, key path).
pub fn issue(
    dir: &Path,
    agency: &str,
    division: &str,
    system: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let uri = format!("urn:cadrex:system:{agency}:{division}:{system}");
    // The same parser the server uses, so nothing is issued that would be refused on the call.
    parse_uri(&uri).map_err(anyhow::Error::msg)?;
    let now = OffsetDateTime::now_utc();
    let spec = ClientSpec {
        uris: vec![uri],
        not_before: now - BACKDATE,
        not_after: now + LEAF_VALIDITY,
        common_name: system.to_string(),
    };
    issue_custom(dir, &format!("{agency}-{division}-{system}"), &spec)
}

/// The development PKI in `dir`, created as `serve` creates it when the
/// directory has none, with a digest key beside it. Seed, bench and soak start
/// from here so that the server they feed reads the same keys.
pub fn ensure_dev(dir: &Path) -> anyhow::Result<()> {
    if !PkiPaths::new(dir).exists() {
        init(dir, DEFAULT_DIVISION)?;
        tracing::warn!(dir = %dir.display(), "created DEVELOPMENT certificates");
    }
    let digest = PkiPaths::new(dir).digest_key();
    if !digest.exists() {
        write_digest_key(&digest)?;
    }
    Ok(())
}

/// Certificate and key of the `agency` system of `division`: the development
/// pair when `init` made one, else one issued now (`{agency}-sys`).
pub fn agency_cert(
    dir: &Path,
    agency: Agency,
    division: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let paths = PkiPaths::new(dir);
    let (crt, key) = (
        paths.client_cert(agency.as_str(), division),
        paths.client_key(agency.as_str(), division),
    );
    if crt.exists() {
        return Ok((crt, key));
    }
    let system = format!("{}-sys", agency.as_str());
    let stem = paths
        .clients_dir()
        .join(format!("{}-{division}-{system}", agency.as_str()));
    let (crt, key) = (stem.with_extension("crt"), stem.with_extension("key"));
    if crt.exists() {
        return Ok((crt, key));
    }
    issue(dir, agency.as_str(), division, &system)
}

/// The principal a certificate file stands for, read as the server reads it.
pub fn principal_of(cert: &Path) -> anyhow::Result<crate::identity::Principal> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_file(cert)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", cert.display()))?;
    crate::identity::principal_from_der(der.as_ref()).map_err(anyhow::Error::msg)
}

/// Issues a client certificate from an arbitrary spec (tests use it for missing, multiple
/// or malformed URIs and for expired certificates). Writes `clients/{stem}.crt|.key`.
pub fn issue_custom(
    dir: &Path,
    stem: &str,
    spec: &ClientSpec,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    issue_with_usages(dir, stem, spec, &[ExtendedKeyUsagePurpose::ClientAuth])
}

/// Like [`issue_custom`] with the given extended key usages instead of
/// `clientAuth` alone; tests use it to show that the server refuses a
/// certificate without `clientAuth` at the handshake.
pub fn issue_with_usages(
    dir: &Path,
    stem: &str,
    spec: &ClientSpec,
    usages: &[ExtendedKeyUsagePurpose],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if stem.is_empty() || stem.contains(['/', '\\']) || stem.starts_with('.') {
        bail!("bad file stem {stem:?}");
    }
    let paths = PkiPaths::new(dir);
    let ca = load_issuer(&paths)?;
    fs::create_dir_all(paths.clients_dir())?;
    sign_client(&ca, &paths, stem, spec, usages)
}

/// Adds the certificate's serial to `crl.pem`, re-signed by the CA with the next CRL number.
/// Revoking an already revoked certificate changes nothing.
pub fn revoke(dir: &Path, cert: &Path) -> anyhow::Result<()> {
    let paths = PkiPaths::new(dir);
    let ca_pem = read_to_string(&paths.ca_cert())?;
    let ca_der = pem_der(&ca_pem, "CERTIFICATE", &paths.ca_cert())?;
    let (_, ca_cert) = X509Certificate::from_der(&ca_der)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", paths.ca_cert().display()))?;

    let cert_pem = read_to_string(cert)?;
    let cert_der = pem_der(&cert_pem, "CERTIFICATE", cert)?;
    let (_, target) = X509Certificate::from_der(&cert_der)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", cert.display()))?;
    if target.issuer().as_raw() != ca_cert.subject().as_raw() {
        bail!(
            "{} was not issued by the CA in {}",
            cert.display(),
            dir.display()
        );
    }
    let serial = target.raw_serial().to_vec();
    let (mut revoked, number) = read_crl(&paths)?;
    if revoked
        .iter()
        .any(|r| serial_hex(r.serial_number.as_ref()) == serial_hex(&serial))
    {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    revoked.push(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial),
        revocation_time: now,
        reason_code: None,
        invalidity_date: None,
    });
    sign_crl(
        &paths,
        &ca_pem,
        &ca_cert,
        number + 1,
        revoked,
        now,
        CRL_VALIDITY,
    )
}

/// Re-signs `crl.pem` with the same revocations, the next CRL number and a
/// next update `validity` from now, so that verifiers keep accepting it.
/// A CRL is published for a fixed time (30 days by default): without a
/// renewal the server warns, and strict verifiers would refuse an expired one.
pub fn renew_crl(dir: &Path, validity: Duration) -> anyhow::Result<()> {
    if validity <= Duration::ZERO {
        bail!("the CRL must stay valid for at least one day");
    }
    let paths = PkiPaths::new(dir);
    let ca_pem = read_to_string(&paths.ca_cert())?;
    let ca_der = pem_der(&ca_pem, "CERTIFICATE", &paths.ca_cert())?;
    let (_, ca_cert) = X509Certificate::from_der(&ca_der)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", paths.ca_cert().display()))?;
    let (revoked, number) = read_crl(&paths)?;
    let now = OffsetDateTime::now_utc();
    sign_crl(
        &paths,
        &ca_pem,
        &ca_cert,
        number + 1,
        revoked,
        now,
        validity,
    )
}

/// The revocations in `crl.pem` and its CRL number (none and 0 when there is
/// no CRL yet).
fn read_crl(paths: &PkiPaths) -> anyhow::Result<(Vec<RevokedCertParams>, u64)> {
    let crl_path = paths.crl();
    if !crl_path.exists() {
        return Ok((Vec::new(), 0));
    }
    let crl_pem = read_to_string(&crl_path)?;
    let crl_der = pem_der(&crl_pem, "X509 CRL", &crl_path)?;
    let (_, crl) = parse_x509_crl(&crl_der)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", crl_path.display()))?;
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| {
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.raw_serial()),
                revocation_time: OffsetDateTime::from_unix_timestamp(
                    r.revocation_date.timestamp(),
                )?,
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let number = crl
        .crl_number()
        .map(|n| n.to_bytes_be())
        .unwrap_or_default();
    if number.len() > 8 {
        bail!("CRL number in {} is too large", crl_path.display());
    }
    let number = number
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok((entries, number))
}

/// Writes `crl.pem`, signed by the CA.
fn sign_crl(
    paths: &PkiPaths,
    ca_pem: &str,
    ca_cert: &X509Certificate<'_>,
    number: u64,
    revoked: Vec<RevokedCertParams>,
    now: OffsetDateTime,
    validity: Duration,
) -> anyhow::Result<()> {
    // The CRL's authority key identifier must equal the CA's subject key identifier, or
    // verifiers that match by key id would not pair them; take it from the CA itself.
    let key_id = ca_cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256);
    let ca = issuer_from(paths, ca_pem)?;
    let crl = crl_params(number, revoked, key_id, now, validity).signed_by(&ca)?;
    write_atomic(&paths.crl(), crl.pem()?.as_bytes())
}

fn crl_params(
    number: u64,
    revoked_certs: Vec<RevokedCertParams>,
    key_identifier_method: KeyIdMethod,
    now: OffsetDateTime,
    validity: Duration,
) -> CertificateRevocationListParams {
    CertificateRevocationListParams {
        // A minute back so a verifier with a slightly slow clock does not see a future CRL.
        this_update: now - Duration::minutes(1),
        next_update: now + validity,
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method,
    }
}

fn sign_client(
    ca: &Issuer<'_, KeyPair>,
    paths: &PkiPaths,
    stem: &str,
    spec: &ClientSpec,
    usages: &[ExtendedKeyUsagePurpose],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let key = new_key()?;
    let mut params = leaf_params(&spec.common_name, spec.not_before, spec.not_after)?;
    params.subject_alt_names = spec
        .uris
        .iter()
        .map(|u| Ok(SanType::URI(u.as_str().try_into()?)))
        .collect::<Result<_, rcgen::Error>>()?;
    params.extended_key_usages = usages.to_vec();
    let cert = params.signed_by(&key, ca)?;
    let (cert_path, key_path) = (paths.stem_cert(stem), paths.stem_key(stem));
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(&cert_path, cert.pem().as_bytes())?;
    Ok((cert_path, key_path))
}

fn leaf_params(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cadrex");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn load_issuer(paths: &PkiPaths) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let ca_pem = read_to_string(&paths.ca_cert())?;
    issuer_from(paths, &ca_pem)
}

fn issuer_from(paths: &PkiPaths, ca_pem: &str) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let key = KeyPair::from_pem(&read_to_string(&paths.ca_key())?)
        .with_context(|| format!("reading CA key {}", paths.ca_key().display()))?;
    Issuer::from_ca_cert_pem(ca_pem, key)
        .with_context(|| format!("reading CA certificate {}", paths.ca_cert().display()))
}

fn new_key() -> anyhow::Result<KeyPair> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

/// 16 random bytes, top bit cleared so the DER integer is positive, second bit set so it
/// keeps all 16 bytes (no padding or stripping that could make two encodings of one serial).
fn random_serial() -> anyhow::Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn fill_random(buf: &mut [u8]) -> anyhow::Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| anyhow::anyhow!("system random number generator failed"))
}

fn read_to_string(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn pem_der(pem: &str, label: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    let der = match label {
        "CERTIFICATE" => {
            rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).map(|d| d.to_vec())
        }
        _ => rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
            .map(|d| d.to_vec()),
    };
    der.map_err(|e| anyhow::anyhow!("no {label} PEM block in {}: {e}", path.display()))
}

/// Private keys are created 0600 from the start, so there is no moment at which another
/// user could open them; an existing file gets its mode reset as well.
/// Writes a new random digest key to `path` (mode 0600). Never replaces an
/// existing file: a new key would make every keyed digest of the store
/// unverifiable, so an existing key is an error the caller must look at.
pub fn write_digest_key(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        anyhow::bail!(
            "{} already exists; a digest key is never replaced",
            path.display()
        );
    }
    let mut raw = [0u8; 32];
    fill_random(&mut raw)?;
    write_private(path, crate::digest::DigestKey::file_text(&raw).as_bytes())
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

fn write_public(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// A running server polls the CRL; writing a temporary file and renaming it over the old one
/// means it only ever sees the old or the new CRL, never a half-written one.
fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("crl.pem");
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::principal_from_der;

    fn der_of(path: &Path) -> Vec<u8> {
        pem_der(&fs::read_to_string(path).unwrap(), "CERTIFICATE", path).unwrap()
    }

    fn crl_serials(path: &Path) -> (Vec<String>, u64) {
        let der = pem_der(&fs::read_to_string(path).unwrap(), "X509 CRL", path).unwrap();
        let (_, crl) = parse_x509_crl(&der).unwrap();
        let serials = crl
            .iter_revoked_certificates()
            .map(|r| serial_hex(r.raw_serial()))
            .collect();
        let number = crl
            .crl_number()
            .unwrap()
            .to_u64_digits()
            .first()
            .copied()
            .unwrap_or(0);
        (serials, number)
    }

    #[test]
    fn init_issue_revoke() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init(dir, DEFAULT_DIVISION).unwrap();
        let paths = PkiPaths::new(dir);
        assert!(paths.exists());
        assert!(
            init(dir, DEFAULT_DIVISION).is_err(),
            "second init must refuse"
        );

        for key in [
            paths.ca_key(),
            paths.server_key(),
            paths.log_signing_key(),
            paths.informant_key(),
            paths.client_key("audit", "360000"),
        ] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let informant = fs::read_to_string(paths.informant_key()).unwrap();
        let hex_part = informant
            .strip_prefix("k1:")
            .unwrap()
            .strip_suffix('\n')
            .unwrap();
        assert_eq!(hex::decode(hex_part).unwrap().len(), 32);
        assert!(
            fs::read_to_string(paths.log_signing_key())
                .unwrap()
                .contains("BEGIN PRIVATE KEY")
        );

        for div in [DEFAULT_DIVISION, "360802", "360000"] {
            for agency in Agency::ALL {
                let p =
                    principal_from_der(&der_of(&paths.client_cert(agency.as_str(), div))).unwrap();
                assert_eq!((p.agency, p.division.as_str()), (agency, div));
                assert_eq!(p.system, format!("{agency}-sys"));
            }
        }
        let (empty, number) = crl_serials(&paths.crl());
        assert!(empty.is_empty());
        assert_eq!(number, 1);

        let (crt, _key) = issue(dir, "organization", "360821", "org-mis").unwrap();
        assert!(crt.ends_with("clients/organization-360821-org-mis.crt"));
        assert!(issue(dir, "police", "360821", "x").is_err());
        assert!(issue(dir, "audit", "36082", "x").is_err());

        let first = principal_from_der(&der_of(&paths.client_cert("audit", "360821"))).unwrap();
        let second = principal_from_der(&der_of(&crt)).unwrap();
        revoke(dir, &paths.client_cert("audit", "360821")).unwrap();
        revoke(dir, &crt).unwrap();
        revoke(dir, &crt).unwrap();
        let (serials, number) = crl_serials(&paths.crl());
        assert_eq!(serials, vec![first.serial.clone(), second.serial.clone()]);
        assert_eq!(number, 3);

        // Renewal keeps every revocation, moves the number on and the next
        // update out, and the server loads it.
        let next_update = |path: &Path| {
            let der = pem_der(&fs::read_to_string(path).unwrap(), "X509 CRL", path).unwrap();
            let (_, crl) = parse_x509_crl(&der).unwrap();
            crl.next_update().unwrap().timestamp()
        };
        let before = next_update(&paths.crl());
        renew_crl(dir, Duration::days(90)).unwrap();
        let (serials, number) = crl_serials(&paths.crl());
        assert_eq!(serials, vec![first.serial, second.serial]);
        assert_eq!(number, 4);
        let after = next_update(&paths.crl());
        assert!(after - before > 59 * 86_400, "{before} -> {after}");
        assert!(renew_crl(dir, Duration::ZERO).is_err());
        crate::tls::TlsState::load(crate::tls::TlsPaths {
            ca_cert: paths.ca_cert(),
            server_cert: paths.server_cert(),
            server_key: paths.server_key(),
            crl: Some(paths.crl()),
        })
        .expect("the renewed CRL loads");
    }

    #[test]
    fn custom_specs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        init(dir, "360802").unwrap();
        let now = OffsetDateTime::now_utc();
        let spec = ClientSpec {
            uris: vec![
                "urn:cadrex:system:audit:360802:a".into(),
                "urn:cadrex:system:audit:360802:b".into(),
            ],
            not_before: now - Duration::days(10),
            not_after: now - Duration::days(1),
            common_name: "urn:cadrex:system:discipline:000000:x".into(),
        };
        let (crt, key) = issue_custom(dir, "two-uris", &spec).unwrap();
        assert!(key.exists());
        assert!(principal_from_der(&der_of(&crt)).is_err());
        let none = ClientSpec {
            uris: vec![],
            ..spec
        };
        let (crt, _) = issue_custom(dir, "no-uri", &none).unwrap();
        assert!(principal_from_der(&der_of(&crt)).is_err());
    }
}
