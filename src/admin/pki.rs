//! `cadrex pki …`: the command over the PKI library (`crate::pki`), which the server and the tools share.

use std::path::PathBuf;

use time::Duration;

use crate::pki::{DEFAULT_DIVISION, PkiPaths, init, issue, renew_crl, revoke};

/// `cadrex pki …`: development and test certificates.
#[derive(clap::Subcommand, Debug)]
pub enum PkiCommand {
    /// Creates a CA, server certificate, log-signing key and client certificates.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = DEFAULT_DIVISION)]
        division: String,
    },
    /// Issues a client certificate for one more system.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// discipline, organization, audit or petition.
        #[arg(long)]
        agency: String,
        /// 6-digit division code.
        #[arg(long)]
        division: String,
        /// Short lowercase system name.
        #[arg(long)]
        system: String,
    },
    /// Adds a certificate to the CRL (crl.pem in the PKI directory).
    Revoke {
        /// The PKI directory (holds ca.crt, ca.key and crl.pem).
        #[arg(long)]
        dir: PathBuf,
        /// The certificate to revoke (PEM), issued by this CA.
        #[arg(long)]
        cert: PathBuf,
    },
    /// Re-signs the CRL with the same revocations and a new next-update time;
    /// run it before the server's CRL warning turns into an expired CRL.
    Crl {
        /// The PKI directory (holds ca.crt, ca.key and crl.pem).
        #[arg(long)]
        dir: PathBuf,
        /// Days until the CRL's next update.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=3650))]
        days: u16,
    },
}

impl PkiCommand {
    pub fn run(self) -> anyhow::Result<std::process::ExitCode> {
        match self {
            PkiCommand::Init { dir, division } => {
                init(&dir, &division)?;
                println!("PKI written to {}", dir.display());
            }
            PkiCommand::Issue {
                dir,
                agency,
                division,
                system,
            } => {
                let (crt, key) = issue(&dir, &agency, &division, &system)?;
                println!("{}\n{}", crt.display(), key.display());
            }
            PkiCommand::Crl { dir, days } => {
                renew_crl(&dir, Duration::days(i64::from(days)))?;
                println!(
                    "CRL {} re-signed; next update in {days} days",
                    PkiPaths::new(&dir).crl().display()
                );
            }
            PkiCommand::Revoke { dir, cert } => {
                revoke(&dir, &cert)?;
                println!(
                    "revoked {}; CRL {}",
                    cert.display(),
                    PkiPaths::new(&dir).crl().display()
                );
            }
        }
        Ok(std::process::ExitCode::SUCCESS)
    }
}
