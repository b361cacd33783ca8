//! dm-master: loads its config, runs (or joins) etcd, campaigns for leadership (the leader
//! runs the Scheduler), and serves the HTTP API: `/status`, `/metrics`, the internal API for
//! workers, DM's grpc-gateway paths for dmctl and DM's OpenAPI. DM serves the OpenAPI only
//! with `openapi = true`; dm-rs always serves it (the key is accepted and ignored).

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use clap::Parser;
use dm::actors::master::MasterHandle;
use dm::actors::master::election::ElectionActor;
use dm::api::ratelimit::RateLimiter;
use dm::api::{self, master::MasterState};
use dm::config::{MasterConfig, Secret, SecretKey};
use dm::error::{DmError, codes};
use dm::messages::master::Resign;
use dm::store::etcd::{self, member};
use tracing::{info, warn};

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
    /// Seconds the leader's election lease lives: how long a killed leader keeps leading.
    #[arg(long)]
    election_ttl: Option<u64>,
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
        if let Some(ttl) = args.election_ttl {
            c.election_ttl = ttl;
        }
    })?;
    dm::telemetry::init(&cfg.log_level, &cfg.log_file, &cfg.log_format)?;
    actix_web::rt::System::new().block_on(serve(cfg))
}

async fn serve(cfg: MasterConfig) -> Result<(), DmError> {
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

    let (key, key_hex) = secret_key(&cfg)?;
    let handle = MasterHandle::new(cfg.name.clone(), cfg.advertise_addr.clone(), client, key);
    // Keeps `handle`'s leader current and runs the Scheduler while this master leads.
    let election = ElectionActor::new(handle.clone(), cfg.election_ttl()).start();

    let registry = prometheus::Registry::new();
    dm::metrics::ProcessMetrics::register(&registry, "master");
    let registry = web::Data::new(registry);
    let external = !cfg.external_etcd().is_empty();
    let mut state = MasterState::new(handle, endpoints, external);
    state.secret_key_hex = key_hex;
    state.limiter = RateLimiter::new(cfg.rpc_rate_limit, cfg.rpc_rate_burst);
    let state = web::Data::new(state);
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
    // Give up leadership at once so a follower takes over without waiting for the lease.
    if let Err(e) = election.send(Resign).await {
        warn!(name = %cfg.name, error = %e, "resigning leadership failed");
    }
    if let Some(m) = child {
        m.stop().await;
        info!(name = %cfg.name, "etcd member stopped");
    }
    info!(name = %cfg.name, "dm-master stopped");
    result
        .map_err(|e| DmError::new(&codes::MASTER_START_SERVICE, "HTTP server failed").with_cause(e))
}

/// The key of `secret-key-path`, if set, and its hex text (handed to workers).
fn secret_key(cfg: &MasterConfig) -> Result<(Option<SecretKey>, Secret), DmError> {
    if cfg.secret_key_path.is_empty() {
        return Ok((None, Secret::default()));
    }
    let path = Path::new(&cfg.secret_key_path);
    let key = SecretKey::from_file(path)?;
    let hex = std::fs::read_to_string(path).map_err(|e| {
        DmError::new(
            &codes::CONFIG_SECRET_KEY,
            format!("cannot read secret key file `{}`", path.display()),
        )
        .with_cause(e)
    })?;
    Ok((Some(key), Secret::new(hex.trim())))
}
