//! Prometheus metrics. There is no global registry: each process builds one [`Registry`] in
//! `main`, components register their families on it, and the HTTP server renders it at
//! `/metrics`. Names follow DM (`dm_<subsystem>_<what>`), labels are bounded
//! (`task`, `source_id`, `worker`, plus small enums), never table names.

use prometheus::{Encoder, IntGauge, Opts, Registry, TextEncoder};

/// Metrics every dm-rs process exports.
#[derive(Clone)]
pub struct ProcessMetrics {
    /// Seconds since the Unix epoch at process start (`dm_process_start_time_seconds`).
    pub start_time: IntGauge,
}

impl ProcessMetrics {
    /// Registers the process metrics of `component` (`master` or `worker`).
    pub fn register(registry: &Registry, component: &str) -> Self {
        let start_time = IntGauge::with_opts(
            Opts::new(
                "start_time_seconds",
                "Start time of the process since the Unix epoch in seconds.",
            )
            .namespace("dm")
            .subsystem(component.to_string()),
        )
        .expect("static metric options");
        registry
            .register(Box::new(start_time.clone()))
            .expect("registered once per registry");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        start_time.set(now);
        Self { start_time }
    }
}

/// Renders `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(buf).expect("prometheus text format is UTF-8")
}
