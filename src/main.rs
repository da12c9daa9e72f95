//! The `cadrex` command: parses flags, sets up logging, and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cadrex::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "cadrex",
    version,
    about = "Mutual-TLS gRPC exchange of leading-cadre records"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the exchange server.
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:50051.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Store URL: sqlite://PATH or postgres://…
        #[arg(long)]
        store: Option<String>,
        /// PKI directory (created with development certificates when absent).
        #[arg(long)]
        pki_dir: Option<PathBuf>,
        /// CRL file, re-read on change and on SIGHUP.
        #[arg(long)]
        crl: Option<PathBuf>,
        /// Directory with cadrex.cedarschema and *.cedar instead of the shipped policies.
        #[arg(long)]
        policy_dir: Option<PathBuf>,
    },
    /// Writes a consistent copy of a SQLite store (PostgreSQL: use pg_dump).
    Backup {
        #[arg(long)]
        store: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Restores a SQLite backup into a new store and gives it a new epoch, so
    /// that change-feed cursors from before the restore are refused.
    Restore {
        /// Backup file (from `cadrex backup`); not needed with --epoch-only.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Target store URL.
        #[arg(long)]
        store: String,
        /// Only renew the epoch (after restoring PostgreSQL with pg_restore).
        #[arg(long)]
        epoch_only: bool,
    },
    /// Operator client: dossiers and the integrity-opinion workflow.
    Client(cadrex::client::ClientCli),
    /// Development and test certificates.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Access-log tools.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Informant-key tools.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Bulk-imports cadres or records from a CSV or NDJSON file (see README "Bulk import").
    Import {
        /// What the file holds.
        #[arg(long, value_enum)]
        kind: cadrex::import::ImportKind,
        /// Input: F.csv (header row) or F.ndjson (one JSON object per line).
        #[arg(long)]
        file: PathBuf,
        /// Client certificate of the submitting system (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// CA certificate [default: ca.crt one directory above the certificate's].
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Server URL.
        #[arg(long, default_value = cadrex::import::DEFAULT_SERVER)]
        server: String,
        /// Name the server certificate must carry.
        #[arg(long, default_value = cadrex::import::DEFAULT_SERVER_NAME)]
        server_name: String,
        /// Rows per call (at most 1000).
        #[arg(long, default_value_t = cadrex::import::DEFAULT_BATCH,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
        batch: usize,
        /// Rejected rows [default: F.rejected.csv beside the input].
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Keeps a local copy of the change feed: a SQLite mirror or an NDJSON file
    /// (see README "Keeping a copy in sync").
    Sync {
        /// Kinds to copy, comma-separated: cadre, sanction, admonishment, clue,
        /// org-handling, personal-matters-check, evaluation, audit-engagement,
        /// audit-finding, petition.
        #[arg(long, required = true, value_delimiter = ',', value_parser = cadrex::sync::parse_kind)]
        kinds: Vec<cadrex::proto::ChangeKind>,
        /// Mirror database, sqlite://FILE (created when absent).
        #[arg(long, required_unless_present = "out", conflicts_with = "out")]
        into: Option<String>,
        /// Appends one JSON line per event to FILE.ndjson instead (cursor in FILE.ndjson.cursor).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Catch up, then again after this pause (e.g. 5m), until stopped.
        #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "once")]
        interval: Option<std::time::Duration>,
        /// Catch up once and exit. Without --once or --interval, follows a watch stream.
        #[arg(long)]
        once: bool,
        /// Client certificate of the syncing system (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// CA certificate [default: ca.crt one directory above the certificate's].
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Server URL.
        #[arg(long, default_value = cadrex::import::DEFAULT_SERVER)]
        server: String,
        /// Name the server certificate must carry.
        #[arg(long, default_value = cadrex::import::DEFAULT_SERVER_NAME)]
        server_name: String,
        /// Items per listing page (at most 1000).
        #[arg(long, default_value_t = cadrex::sync::DEFAULT_PAGE_SIZE,
              value_parser = clap::value_parser!(i32).range(1..=1000))]
        page_size: i32,
    },
    /// Fills a store with deterministic synthetic cadres, records and opinion
    /// requests (see BENCHMARKS.md).
    Seed {
        /// Store URL: sqlite://PATH or postgres://…
        #[arg(long)]
        store: String,
        /// PKI of the server that will read the store (its informant key seals
        /// 检举人信息); created with development certificates when absent.
        #[arg(long, default_value = "./cadrex-data/pki")]
        pki_dir: PathBuf,
        #[arg(long, default_value_t = cadrex::seed::DEFAULT_CADRES)]
        cadres: usize,
        /// Mean records per cadre (most have fewer, a few many more).
        #[arg(long, default_value_t = cadrex::seed::DEFAULT_RECORDS_PER_CADRE)]
        records_per_cadre: u32,
        /// PRNG seed: the same seed gives the same data.
        #[arg(long, default_value_t = cadrex::seed::DEFAULT_SEED)]
        seed: u64,
    },
    /// Measures a server over mutual TLS on loopback (see BENCHMARKS.md).
    Bench {
        /// Store URL; seeded with the defaults first when it has no cadres.
        #[arg(long)]
        store: String,
        /// Total measuring time, split across the phases.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Prints one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// A running server on loopback (127.0.0.1:PORT) instead of a child process.
        #[arg(long)]
        server: Option<std::net::SocketAddr>,
        #[arg(long, default_value = "./cadrex-data/pki")]
        pki_dir: PathBuf,
        /// Seed for choosing cadres.
        #[arg(long, default_value_t = cadrex::seed::DEFAULT_SEED)]
        seed: u64,
        /// Measures only this phase, for the whole duration, at 16 callers.
        #[arg(long, value_enum)]
        only: Option<cadrex::bench::Phase>,
    },
    /// Runs a bounded mixed workload at a fixed rate and fails on any error
    /// status or on server memory growth beyond a bound (see BENCHMARKS.md).
    Soak {
        /// A running server on loopback (127.0.0.1:PORT).
        #[arg(long, required_unless_present = "store", conflicts_with = "store")]
        server: Option<std::net::SocketAddr>,
        /// Its process id, to watch its memory.
        #[arg(long, requires = "server")]
        server_pid: Option<u32>,
        /// Starts a server on this (seeded) store instead.
        #[arg(long)]
        store: Option<String>,
        #[arg(long, default_value = "./cadrex-data/pki")]
        pki_dir: PathBuf,
        /// Calls per second (dossier reads, cadre reads, feed pages, submissions).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(cadrex::soak::MAX_RATE)))]
        rate: u32,
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Largest allowed server RSS growth from the end of the warm-up to the end.
        #[arg(long, default_value_t = 20)]
        max_rss_growth_mib: u64,
    },
    /// Benchmark builds only: `serve` with the access-log append replaced by a
    /// no-op, so `cadrex bench` can measure what the log costs.
    #[cfg(feature = "bench-nolog")]
    #[command(hide = true)]
    BenchServer {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        store: String,
        #[arg(long)]
        pki_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Creates a CA, server certificate, log-signing key and client certificates.
    Init {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = cadrex::pki::DEFAULT_DIVISION)]
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
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        cert: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypts every informant block under a new key and retires the old
    /// ones. Offline: stop every server on the store first, start them after.
    /// An interrupted run is finished by running it again.
    Rotate {
        #[arg(long)]
        store: String,
        /// Informant key file (`id:hex` lines, current key first).
        #[arg(long, default_value = "./cadrex-data/pki/informant.key")]
        key_file: PathBuf,
        /// Rows re-encrypted per transaction.
        #[arg(long, default_value_t = cadrex::keys::DEFAULT_BATCH,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Recomputes the hash chain, checks the per-cadre index against it, and
    /// checks every signed checkpoint (and an exported one) with a public key
    /// you supply. Fails unless signatures can be checked or --no-signatures.
    Verify {
        #[arg(long)]
        store: String,
        /// The exchange's log-signing public key (PEM `PUBLIC KEY`, as
        /// `cadrex pki init` writes `log-signing.pub`). Keys stored in the
        /// database are never trusted.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The log-signing private key, at the exchange itself: its public half is used.
        #[arg(long, conflicts_with = "public_key")]
        key: Option<PathBuf>,
        /// Checks the chain without checking checkpoint signatures.
        #[arg(long, conflicts_with_all = ["public_key", "key"])]
        no_signatures: bool,
        /// A checkpoint exported earlier (the protobuf JSON of
        /// `cadrex.v1.Checkpoint` that `GetCheckpoint` returns and
        /// `cadrex log checkpoint` prints), kept outside this database.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Rows covered by no signed checkpoint and older than this fail the
        /// check (a running server signs every few seconds, a stopping one
        /// signs its last row).
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        max_unsigned_age: std::time::Duration,
    },
    /// Prints the newest signed checkpoint as the protobuf JSON of `cadrex.v1.Checkpoint`.
    Checkpoint {
        #[arg(long)]
        store: String,
        /// Checks the checkpoint's signature with this public key and includes it.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The log-signing private key: its public half is used.
        #[arg(long, conflicts_with = "public_key")]
        key: Option<PathBuf>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CADREX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    cadrex::server::install_crypto_provider();
    match cli.command {
        Command::Serve {
            config,
            listen,
            store,
            pki_dir,
            crl,
            policy_dir,
        } => {
            let overrides = Overrides {
                listen,
                store,
                pki_dir,
                crl,
                policy_dir,
            };
            let config = Config::load(config.as_deref(), &overrides)?;
            tracing::debug!(?config, "configuration");
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            cadrex::run(config, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed {
            store,
            pki_dir,
            cadres,
            records_per_cadre,
            seed,
        } => {
            let mut args = cadrex::seed::SeedArgs::new(store, pki_dir);
            args.cadres = cadres;
            args.records_per_cadre = records_per_cadre;
            args.seed = seed;
            args.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            println!("{}", cadrex::seed::run(args).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            store,
            duration,
            json,
            server,
            pki_dir,
            seed,
            only,
        } => {
            let report = cadrex::bench::run(cadrex::bench::BenchArgs {
                store,
                server,
                pki_dir,
                duration,
                seed,
                only,
            })
            .await?;
            if json {
                println!("{}", report.json());
            } else {
                println!("{}", report.table());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Soak {
            server,
            server_pid,
            store,
            pki_dir,
            rate,
            duration,
            max_rss_growth_mib,
        } => {
            let report = cadrex::soak::run(cadrex::soak::SoakArgs {
                server,
                server_pid,
                store,
                pki_dir,
                rate,
                duration,
                max_rss_growth_mib,
            })
            .await?;
            println!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        #[cfg(feature = "bench-nolog")]
        Command::BenchServer {
            listen,
            store,
            pki_dir,
        } => {
            cadrex::access_log::bench_nolog::disable_logging();
            tracing::warn!("bench-server: the access log is a no-op in this process");
            let overrides = Overrides {
                listen: Some(listen),
                store: Some(store),
                pki_dir: Some(pki_dir),
                ..Default::default()
            };
            let config = Config::load(None, &overrides)?;
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            cadrex::run(config, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { store, out } => {
            cadrex::cli::backup(&store, &out).await?;
            println!("backup written to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            from,
            store,
            epoch_only,
        } => {
            let epoch = cadrex::cli::restore(from.as_deref(), &store, epoch_only).await?;
            println!(
                "restored; new epoch {epoch}; feed cursors from before the restore are refused (CURSOR_EXPIRED)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Client(cli) => {
            cadrex::client::run(cli).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki { command } => {
            match command {
                PkiCommand::Init { dir, division } => {
                    cadrex::pki::init(&dir, &division)?;
                    println!("PKI written to {}", dir.display());
                }
                PkiCommand::Issue {
                    dir,
                    agency,
                    division,
                    system,
                } => {
                    let (crt, key) = cadrex::pki::issue(&dir, &agency, &division, &system)?;
                    println!("{}\n{}", crt.display(), key.display());
                }
                PkiCommand::Revoke { dir, cert } => {
                    cadrex::pki::revoke(&dir, &cert)?;
                    println!(
                        "revoked {}; CRL {}",
                        cert.display(),
                        cadrex::pki::PkiPaths::new(&dir).crl().display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Log { command } => cadrex::cli::log(command_parts(command)).await,
        Command::Keys {
            command:
                KeysCommand::Rotate {
                    store,
                    key_file,
                    batch,
                },
        } => {
            let summary = cadrex::keys::rotate(&store, &key_file, batch).await?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            kind,
            file,
            cert,
            key,
            ca,
            server,
            server_name,
            batch,
            report,
        } => {
            let report = report.unwrap_or_else(|| cadrex::import::default_report(&file));
            let args = cadrex::import::ImportArgs {
                kind,
                ca: ca.unwrap_or_else(|| cadrex::import::default_ca(&cert)),
                file,
                cert,
                key,
                server,
                server_name,
                batch_size: batch,
                report: Some(report.clone()),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            };
            let summary = cadrex::import::run(args).await?;
            println!("{summary}");
            if summary.rejected > 0 {
                println!("rejected rows: {}", report.display());
                // Distinct from 1 (the import failed) so scripts can tell them apart.
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync {
            kinds,
            into,
            out,
            interval,
            once,
            cert,
            key,
            ca,
            server,
            server_name,
            page_size,
        } => {
            let mut args = cadrex::sync::SyncArgs::new(kinds, cert, key);
            if let Some(ca) = ca {
                args.ca = ca;
            }
            args.into = into;
            args.out = out;
            args.mode = match (once, interval) {
                (true, _) => cadrex::sync::SyncMode::Once,
                (false, Some(d)) => cadrex::sync::SyncMode::Interval(d),
                (false, None) => cadrex::sync::SyncMode::Follow,
            };
            args.server = server;
            args.server_name = server_name;
            args.page_size = page_size;
            args.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            // Ctrl-C or SIGTERM ends the run after the batch in hand, with its summary.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            args.stop = Some(stopped);
            let summary = cadrex::sync::run(args).await?;
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn command_parts(c: LogCommand) -> cadrex::cli::LogArgs {
    use cadrex::cli::{LogArgs, LogKey};
    let key = |public_key: Option<PathBuf>, key: Option<PathBuf>| match (public_key, key) {
        (Some(p), _) => LogKey::Public(p),
        (None, Some(k)) => LogKey::Private(k),
        (None, None) => LogKey::None,
    };
    match c {
        LogCommand::Verify {
            store,
            public_key,
            key: private,
            no_signatures,
            checkpoint,
            max_unsigned_age,
        } => LogArgs::Verify {
            store,
            key: key(public_key, private),
            no_signatures,
            checkpoint,
            max_unsigned_age,
        },
        LogCommand::Checkpoint {
            store,
            public_key,
            key: private,
        } => LogArgs::Checkpoint {
            store,
            key: key(public_key, private),
        },
    }
}
