//! The `cadrex` command: parses flags, sets up logging, and hands each command to the module that owns it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cadrex::admin::{backup, keys, log, pki, seed};
use cadrex::config::{Config, Overrides};
use cadrex::tools::{bench, client, import, soak, sync};

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
    Serve(ServeArgs),
    /// Writes a consistent copy of a SQLite store (PostgreSQL: use pg_dump).
    Backup(backup::BackupArgs),
    /// Restores a SQLite backup into a new store and gives it a new epoch, so
    /// that change-feed cursors from before the restore are refused.
    Restore(backup::RestoreArgs),
    /// Operator client: dossiers and the integrity-opinion workflow.
    Client(client::ClientCli),
    /// Development and test certificates.
    Pki {
        #[command(subcommand)]
        command: pki::PkiCommand,
    },
    /// Access-log tools.
    Log {
        #[command(subcommand)]
        command: log::LogCommand,
    },
    /// Informant-key tools.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Bulk-imports cadres or records from a CSV or NDJSON file (see README "Bulk import").
    Import(import::ImportCommand),
    /// Keeps a local copy of the change feed: a SQLite mirror or an NDJSON file
    /// (see README "Keeping a copy in sync").
    Sync(sync::SyncCommand),
    /// Fills a store with deterministic synthetic cadres, records and opinion
    /// requests (see BENCHMARKS.md).
    Seed(seed::SeedCommand),
    /// Measures a server over mutual TLS on loopback (see BENCHMARKS.md).
    Bench(bench::BenchCommand),
    /// Runs a bounded mixed workload at a fixed rate and fails on any error
    /// status or on server memory growth beyond a bound (see BENCHMARKS.md).
    Soak(soak::SoakCommand),
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

/// `cadrex serve`: each flag overrides the configuration file and `CADREX_*`.
#[derive(clap::Args)]
struct ServeArgs {
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
}

impl ServeArgs {
    async fn run(self) -> anyhow::Result<ExitCode> {
        let overrides = Overrides {
            listen: self.listen,
            store: self.store,
            pki_dir: self.pki_dir,
            crl: self.crl,
            policy_dir: self.policy_dir,
        };
        serve(Config::load(self.config.as_deref(), &overrides)?).await
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    tracing::debug!(?config, "configuration");
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    cadrex::run(config, listener, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `cadrex bench`'s store side (`admin::bench`) as the client-side
/// measurement (`tools::bench`) asks for it: the one place both meet, since
/// neither may import the other.
struct BenchStore(cadrex::admin::bench::BenchStore);

#[async_trait::async_trait]
impl bench::StoreSide for BenchStore {
    fn backend(&self) -> String {
        self.0.backend().to_string()
    }
    fn targets(&self) -> Vec<String> {
        self.0.targets.clone()
    }
    fn engagements(&self) -> Vec<(String, String)> {
        self.0.engagements.clone()
    }
    async fn local_state(&self) -> anyhow::Result<cadrex::BuiltState> {
        self.0.local_state().await
    }
    async fn raw_insert(
        &self,
        time: std::time::Duration,
        batch: usize,
        payload: &[u8],
    ) -> anyhow::Result<(u64, std::time::Duration)> {
        self.0.raw_insert(time, batch, payload).await
    }
    async fn change_head(&self) -> anyhow::Result<i64> {
        self.0.change_head().await
    }
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
    cadrex::tools::connect::install_crypto_provider();
    match cli.command {
        Command::Serve(args) => args.run().await,
        Command::Backup(args) => args.run().await,
        Command::Restore(args) => args.run().await,
        Command::Client(cli) => {
            client::run(cli).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pki { command } => command.run(),
        Command::Log { command } => command.run().await,
        Command::Keys { command } => command.run().await,
        Command::Import(args) => args.run().await,
        Command::Sync(args) => args.run(shutdown_signal()).await,
        Command::Seed(args) => args.run().await,
        Command::Bench(args) => {
            args.check()?;
            let store =
                cadrex::admin::bench::BenchStore::open(&args.store, &args.pki_dir, bench::PROVINCE)
                    .await?;
            let store = BenchStore(store);
            let code = args.run(&store).await;
            store.0.close().await;
            code
        }
        Command::Soak(args) => args.run().await,
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
            serve(Config::load(None, &overrides)?).await
        }
    }
}
