//! dm-master: loads its config, runs (or joins) etcd, and serves the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use clap::Parser;
use dm::api::{self, master::MasterState};
use dm::config::MasterConfig;
use dm::error::{DmError, codes};
use dm::store::etcd::{self, member};
use tracing::info;

/// DM master: cluster control plane (etcd, election, scheduling, OpenAPI).
#[derive(Debug, Parser)]
#[command(name = "dm-master", version = env!("CARGO_PKG_VERSION"))]
struct Args {
    /// Path of the TOML config file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Member name (unique in the cluster).
    #[arg(long)]
    name: Option<String>,
    /// host:port of the HTTP API.
    #[arg(long)]
    master_addr: Option<String>,
    /// host:port other members and workers use to reach this master.
    #[arg(long)]
    advertise_addr: Option<String>,
    /// Directory for the embedded etcd member's data.
    #[arg(long)]
    data_dir: Option<String>,
    /// etcd peer URLs to listen on.
    #[arg(long)]
    peer_urls: Option<String>,
    /// etcd peer URLs to advertise.
    #[arg(long)]
    advertise_peer_urls: Option<String>,
    /// `name=url,...` of the initial etcd cluster.
    #[arg(long)]
    initial_cluster: Option<String>,
    /// etcd client URLs of the embedded member.
    #[arg(long)]
    etcd_client_urls: Option<String>,
    /// Use this existing etcd cluster instead of running a member.
    #[arg(long)]
    etcd_endpoints: Option<String>,
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
    let cfg = MasterConfig::load_with(args.config.as_deref(), |c| {
        let set = |dst: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut c.name, args.name);
        set(&mut c.master_addr, args.master_addr);
        set(&mut c.advertise_addr, args.advertise_addr);
        set(&mut c.data_dir, args.data_dir);
        set(&mut c.peer_urls, args.peer_urls);
        set(&mut c.advertise_peer_urls, args.advertise_peer_urls);
        set(&mut c.initial_cluster, args.initial_cluster);
        set(&mut c.etcd_client_urls, args.etcd_client_urls);
        set(&mut c.etcd_endpoints, args.etcd_endpoints);
        set(&mut c.log_level, args.log_level);
        set(&mut c.log_file, args.log_file);
    })?;
    dm::telemetry::init(&cfg.log_level, &cfg.log_file, &cfg.log_format)?;
    actix_web::rt::System::new().block_on(serve(cfg))
}

async fn serve(cfg: MasterConfig) -> Result<(), DmError> {
    let started = Instant::now();
    let mut child = None;
    let endpoints = if cfg.external_etcd().is_empty() {
        let m = member::EtcdMember::spawn(&member::MemberConfig {
            binary: cfg.etcd_binary.clone(),
            name: cfg.name.clone(),
            data_dir: PathBuf::from(&cfg.data_dir),
            client_urls: cfg.etcd_client_urls.clone(),
            peer_urls: cfg.peer_urls.clone(),
            advertise_peer_urls: cfg.advertise_peer_urls.clone(),
            initial_cluster: cfg.initial_cluster.clone(),
            initial_cluster_state: cfg.initial_cluster_state.clone(),
            quota_backend_bytes: cfg.quota_backend_bytes,
            max_txn_ops: cfg.max_txn_ops,
            max_request_bytes: cfg.max_request_bytes,
            auto_compaction_mode: cfg.auto_compaction_mode.clone(),
            auto_compaction_retention: cfg.auto_compaction_retention.clone(),
        })?;
        info!(name = %cfg.name, pid = ?m.pid(), client_urls = %cfg.etcd_client_urls, "etcd member started");
        let urls = m.client_urls().to_vec();
        child = Some(m);
        urls
    } else {
        cfg.external_etcd()
    };
    let client = match etcd::connect(&endpoints, Duration::from_secs(30)).await {
        Ok(c) => c,
        Err(e) => {
            let tail = child.as_ref().map(|m| m.log_tail(20)).unwrap_or_default();
            if let Some(m) = child {
                m.stop().await;
            }
            return Err(if tail.is_empty() {
                e
            } else {
                e.with_cause_text(format!("etcd log tail:\n{tail}"))
            });
        }
    };
    info!(name = %cfg.name, endpoints = %endpoints.join(","), "etcd ready");

    let registry = prometheus::Registry::new();
    dm::metrics::ProcessMetrics::register(&registry, "master");
    let registry = web::Data::new(registry);
    let state = web::Data::new(MasterState {
        name: cfg.name.clone(),
        advertise_addr: cfg.advertise_addr.clone(),
        etcd_endpoints: endpoints,
        etcd: client,
        started,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(registry.clone())
            .configure(api::master::routes)
    })
    .workers(2)
    .bind(api::bind_addr(&cfg.master_addr))
    .map_err(|e| {
        DmError::new(
            &codes::MASTER_START_SERVICE,
            format!("cannot listen on master-addr `{}`", cfg.master_addr),
        )
        .with_cause(e)
    })?
    .run();
    info!(name = %cfg.name, addr = %cfg.master_addr, "dm-master serving");
    let result = server.await;
    if let Some(m) = child {
        m.stop().await;
        info!(name = %cfg.name, "etcd member stopped");
    }
    info!(name = %cfg.name, "dm-master stopped");
    result
        .map_err(|e| DmError::new(&codes::MASTER_START_SERVICE, "HTTP server failed").with_cause(e))
}
