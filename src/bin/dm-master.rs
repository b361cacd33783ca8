//! dm-master: loads its config, runs (or joins) etcd, campaigns for leadership (the leader
//! runs the Scheduler), and serves the HTTP API: `/status`, `/metrics`, the internal API for
//! workers, DM's grpc-gateway paths for dmctl and DM's OpenAPI — and, as DM, etcd's client
//! API on the same `master-addr` (gRPC connections are routed to the member). DM serves the
//! OpenAPI only with `openapi = true`; dm-rs always serves it (the key is accepted and ignored).

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix::Actor;
use actix_web::{App, web};
use clap::Parser;
use dm::actors::master::MasterHandle;
use dm::actors::master::election::ElectionActor;
use dm::actors::master::member::{EtcdMemberActor, MemberState};
use dm::api::ratelimit::RateLimiter;
use dm::api::{self, master::MasterState};
use dm::config::{ConfigFile, MasterConfig, Secret, SecretKey};
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
    // The etcd member (unless `etcd-endpoints` names an external cluster), supervised by the
    // EtcdMember actor from here on.
    let mut member = None;
    let mut grpc_target = None;
    let mut member_state = None;
    let (client, endpoints) = if cfg.external_etcd().is_empty() {
        let lock = member::DataDirLock::acquire(Path::new(&cfg.data_dir))?;
        let (mcfg, m, client) = start_member(&cfg).await?;
        info!(name = %cfg.name, pid = ?m.pid(), client_urls = %mcfg.listen_client_urls, advertised = %mcfg.advertise_client_urls, "etcd member started");
        grpc_target = first_socket_addr(&mcfg.listen_client_urls);
        let endpoints = m.client_urls().to_vec();
        let (actor, rx) = EtcdMemberActor::new(mcfg, m);
        member = Some((actor.start(), lock));
        member_state = Some(rx);
        (client, endpoints)
    } else {
        let endpoints = cfg.external_etcd();
        (
            etcd::connect(&endpoints, Duration::from_secs(30)).await?,
            endpoints,
        )
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
    state.member = member_state.clone();
    let state = web::Data::new(state);
    let listener = std::net::TcpListener::bind(api::bind_addr(&cfg.master_addr)).map_err(|e| {
        DmError::new(
            &codes::MASTER_START_SERVICE,
            format!("cannot listen on master-addr `{}`", cfg.master_addr),
        )
        .with_cause(e)
    })?;
    // HTTP and (when this master runs a member) etcd's gRPC on master-addr, as DM.
    let server = api::mux::serve(listener, 2, grpc_target, move || {
        App::new()
            .app_data(state.clone())
            .app_data(registry.clone())
            .configure(api::master::routes)
    })
    .map_err(|e| {
        DmError::new(&codes::MASTER_START_SERVICE, "cannot start the HTTP server").with_cause(e)
    })?;
    let server_handle = server.handle();
    info!(name = %cfg.name, addr = %cfg.master_addr, "dm-master serving");
    let mut server = actix_web::rt::spawn(server);
    let gave_up = async {
        match member_state {
            Some(mut rx) => loop {
                if let MemberState::Failed { error } = &*rx.borrow_and_update() {
                    return error.clone();
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            },
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        res = &mut server => res
            .map_err(|e| DmError::new(&codes::MASTER_START_SERVICE, "HTTP server task failed").with_cause(e))
            .and_then(|r| r.map_err(|e| DmError::new(&codes::MASTER_START_SERVICE, "HTTP server failed").with_cause(e))),
        err = gave_up => {
            server_handle.stop(true).await;
            let _ = server.await;
            Err(err)
        }
    };
    // Give up leadership at once so a follower takes over without waiting for the lease.
    if let Err(e) = election.send(Resign).await {
        warn!(name = %cfg.name, error = %e, "resigning leadership failed");
    }
    if let Some((actor, _lock)) = member {
        // Dropping the actor's address stops it, which kills the member.
        drop(actor);
        info!(name = %cfg.name, "etcd member stopped");
    }
    info!(name = %cfg.name, "dm-master stopped");
    result
}

/// Attempts at starting the member when its private client port was taken in between.
const MEMBER_PORT_ATTEMPTS: usize = 3;

/// Starts this master's etcd member and waits until it answers. Without `etcd-client-urls`
/// the member listens on a private 127.0.0.1 port (chosen free; chosen again if another
/// process took it first) and advertises `advertise-addr`, where the HTTP server routes gRPC
/// to it.
async fn start_member(
    cfg: &MasterConfig,
) -> Result<
    (
        member::MemberConfig,
        member::EtcdMember,
        etcd_client::Client,
    ),
    DmError,
> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (listen, advertise) = if cfg.muxes_etcd() {
            let port = free_loopback_port()?;
            (
                format!("http://127.0.0.1:{port}"),
                format!("http://{}", cfg.advertise_addr),
            )
        } else {
            (cfg.etcd_client_urls.clone(), cfg.etcd_client_urls.clone())
        };
        let mcfg = member::MemberConfig::for_master(cfg, listen.clone(), advertise);
        match member::EtcdMember::start(&mcfg, Duration::from_secs(30)).await {
            Ok((m, client)) => return Ok((mcfg, m, client)),
            Err(e)
                if cfg.muxes_etcd()
                    && attempt < MEMBER_PORT_ATTEMPTS
                    && e.message.starts_with(member::ExitCause::PortInUse.as_str())
                    && e.message.contains(listen.trim_start_matches("http://")) =>
            {
                warn!(name = %cfg.name, error = %e.chain(), "the member's private client port was taken; choosing another");
            }
            Err(e) => return Err(e),
        }
    }
}

/// A free 127.0.0.1 port, for the member's private client URL.
fn free_loopback_port() -> Result<u16, DmError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            DmError::new(
                &codes::MASTER_START_EMBED_ETCD,
                "cannot find a free 127.0.0.1 port",
            )
            .with_cause(e)
        })
}

/// The socket address of the first URL of `urls` (`http://host:port,...`).
fn first_socket_addr(urls: &str) -> Option<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let first = urls.split(',').next()?.trim();
    let hp = first
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    hp.to_socket_addrs().ok()?.next()
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
