//! dm-worker: loads its config, registers with its masters (or uses `--etcd-endpoints`),
//! keeps its lease and runs the source bound to it ([`dm::actors::worker`]); serves
//! `/status`, `/metrics` and the internal API. SIGINT/SIGTERM stop the source work gracefully
//! (checkpoints flushed) and release the lease before the process exits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use clap::Parser;
use dm::actors::worker::master_probe::MasterProbeActor;
use dm::actors::worker::server::{EtcdAccess, WorkerActor, WorkerOptions};
use dm::api::{self, worker::WorkerState};
use dm::config::{ConfigFile, SecretKey, WorkerConfig};
use dm::error::{DmError, codes};
use dm::messages::worker::ShutdownWorker;
use tokio::sync::oneshot;
use tracing::info;

/// DM worker: runs the migration units of the sources bound to it.
#[derive(Debug, Parser)]
#[command(name = "dm-worker", version = env!("CARGO_PKG_VERSION"))]
struct Args {
    /// Path of the TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Worker name (unique in the cluster).
    #[arg(long)]
    name: Option<String>,
    /// host:port of the worker's HTTP server.
    #[arg(long)]
    worker_addr: Option<String>,
    /// host:port the master uses to reach this worker.
    #[arg(long)]
    advertise_addr: Option<String>,
    /// dm-master addresses (comma-separated host:port).
    #[arg(long)]
    join: Option<String>,
    /// dm-rs: etcd client URLs (comma-separated http://host:port) to use directly instead of
    /// registering with the masters (tests, single-master setups).
    #[arg(long)]
    etcd_endpoints: Option<String>,
    /// dm-rs: key file for encrypted passwords (else the key the master answers, if any).
    #[arg(long, env = "DM_SECRET_KEY_PATH")]
    secret_key_path: Option<PathBuf>,
    /// Keepalive lease TTL in seconds.
    #[arg(long)]
    keepalive_ttl: Option<u64>,
    /// Directory of relay logs.
    #[arg(long)]
    relay_dir: Option<String>,
    /// Log level: debug, info, warn, error, fatal.
    #[arg(short = 'L', long = "log-level")]
    log_level: Option<String>,
    /// Log file (stderr when empty).
    #[arg(long)]
    log_file: Option<String>,
}

fn main() -> ExitCode {
    dm::standalone::exit(run(Args::parse()))
}

fn run(args: Args) -> Result<(), DmError> {
    let cfg = WorkerConfig::load_with(args.config.as_deref(), |c| {
        let set = |dst: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut c.name, args.name);
        set(&mut c.worker_addr, args.worker_addr);
        set(&mut c.advertise_addr, args.advertise_addr);
        set(&mut c.join, args.join);
        set(&mut c.etcd_endpoints, args.etcd_endpoints);
        set(&mut c.relay_dir, args.relay_dir);
        set(&mut c.log_level, args.log_level);
        set(&mut c.log_file, args.log_file);
        if let Some(t) = args.keepalive_ttl {
            c.keepalive_ttl = t;
        }
    })?;
    let key = args
        .secret_key_path
        .as_deref()
        .map(SecretKey::from_file)
        .transpose()?;
    dm::telemetry::init(&cfg.log_level, &cfg.log_file, &cfg.log_format)?;
    actix_web::rt::System::new().block_on(serve(cfg, key))
}

async fn serve(cfg: WorkerConfig, key: Option<SecretKey>) -> Result<(), DmError> {
    let probe = MasterProbeActor::new(cfg.name.clone(), cfg.masters()).start();
    let endpoints = cfg.etcd_endpoints();
    let access = if endpoints.is_empty() {
        EtcdAccess::Join(cfg.masters())
    } else {
        EtcdAccess::Endpoints(endpoints)
    };
    let (fatal_tx, fatal_rx) = oneshot::channel();
    let worker = WorkerActor::new(
        WorkerOptions {
            name: cfg.name.clone(),
            advertise_addr: cfg.advertise_addr.clone(),
            access,
            keepalive_ttl: cfg.keepalive_ttl,
            key,
        },
        fatal_tx,
    )
    .start();
    let registry = prometheus::Registry::new();
    dm::metrics::ProcessMetrics::register(&registry, "worker");
    let registry = web::Data::new(registry);
    let state = web::Data::new(WorkerState {
        name: cfg.name.clone(),
        advertise_addr: cfg.advertise_addr.clone(),
        probe,
        worker: worker.clone(),
        started: Instant::now(),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(registry.clone())
            .configure(api::worker::routes)
    })
    .workers(1)
    .bind(api::bind_addr(&cfg.worker_addr))
    .map_err(|e| {
        DmError::new(
            &codes::WORKER_START_SERVICE,
            format!("cannot listen on worker-addr `{}`", cfg.worker_addr),
        )
        .with_cause(e)
    })?
    .run();
    info!(worker = %cfg.name, addr = %cfg.worker_addr, join = %cfg.join, etcd = %cfg.etcd_endpoints, "dm-worker serving");
    let handle = server.handle();
    let result = tokio::select! {
        r = server => r.map_err(|e| DmError::new(&codes::WORKER_START_SERVICE, "HTTP server failed").with_cause(e)),
        Ok(e) = fatal_rx => {
            handle.stop(false).await;
            Err(e)
        }
    };
    let _ = worker.send(ShutdownWorker).await;
    info!(worker = %cfg.name, "dm-worker stopped");
    result
}
