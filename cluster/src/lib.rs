//! kreq's SQL on Apache Ballista, DataFusion's distributed scheduler and executors.
//!
//! A Ballista client plans a query, sends the plan as protobuf to the scheduler, which splits
//! it into stages that executors run and whose results the client fetches over Arrow Flight.
//! Whatever a plan names must therefore be known where it is decoded. A kreq session adds
//! to plain DataFusion:
//!
//! - the UDFs of `kreq_query::udf` (`fmt_duration`, `fmt_endpoint`, `field`), which the views
//!   and users' queries call: [`scheduler`] registers them in every session it builds and
//!   [`executor`] in its function registry (protobuf carries a UDF by name);
//! - the `kreq.*` session options: both processes' configurations know them, so a client's
//!   settings travel with its queries;
//! - its file format and optimizer rules, which `kreq_query::open_remote` leaves out.
//!
//! Ballista's stock `ballista-scheduler` and `ballista-executor` binaries know none of this,
//! so `kreq cluster scheduler` and `kreq cluster executor` run Ballista's own processes
//! ([`ballista_scheduler::scheduler_process`], [`ballista_executor::executor_process`]) with
//! these additions. Executors read the tables' files by path: every executor must see the
//! warehouse at the path the client opened (one machine, or a shared file system).
#![deny(missing_docs)]

mod error;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
    SessionConfigExt, SessionStateExt,
};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionConfig;
use kreq_query::options::KreqOptions;

pub use error::{Error, Result};

/// The scheduler's port when an address names none (Ballista's default).
pub const DEFAULT_PORT: u16 = 50050;

/// The scheduler's address in `df://HOST[:PORT]` as the gRPC URL Ballista's client takes.
pub fn scheduler_url(url: &str) -> Result<String> {
    let bad = |why| Error::Url {
        url: url.to_owned(),
        why,
    };
    let rest = url
        .strip_prefix("df://")
        .ok_or(bad("it must start with df://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number below 65536"))?,
        ),
        _ => (rest, DEFAULT_PORT),
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad("it names no host"));
    }
    Ok(format!("http://{host}:{port}"))
}

/// Turns a session's state into one that plans on the cluster at `url` (`df://HOST:PORT`);
/// the argument `kreq_query::open_remote` takes. Nothing connects until the first query.
pub fn remote(
    url: &str,
) -> Result<impl Fn(SessionState) -> datafusion::error::Result<SessionState>> {
    let scheduler = scheduler_url(url)?;
    Ok(move |state: SessionState| state.upgrade_for_ballista(scheduler.clone()))
}

/// The session configuration of both processes: Ballista's, with kreq's options.
fn config() -> SessionConfig {
    SessionConfig::new_with_ballista().with_option_extension(KreqOptions::default())
}

/// A scheduler's session for a client's configuration: Ballista's defaults and kreq's UDFs.
fn session(config: SessionConfig) -> datafusion::error::Result<SessionState> {
    let kreq: Vec<Arc<ScalarUDF>> = kreq_query::udf::all().into_iter().map(Arc::new).collect();
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(Arc::new(RuntimeEnvBuilder::new().build()?))
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(
            ballista_scalar_functions()
                .into_iter()
                .chain(kreq)
                .collect(),
        )
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build())
}

/// Runs a Ballista scheduler on `bind` until the process is stopped.
pub async fn scheduler(bind: SocketAddr) -> Result<()> {
    let config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: bind.ip().to_string(),
        override_config_producer: Some(Arc::new(config)),
        override_session_builder: Some(Arc::new(session)),
        ..Default::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|source| Error::Ballista {
            what: "scheduler: cluster state",
            source,
        })?;
    start_server(cluster, bind, Arc::new(config))
        .await
        .map_err(|source| Error::Ballista {
            what: "scheduler",
            source,
        })
}

/// Where an executor listens and which scheduler it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's host and port.
    pub scheduler: (String, u16),
    /// The address the executor listens on and registers with the scheduler.
    pub bind_host: String,
    /// The Arrow Flight port, from which clients and other executors fetch results.
    pub port: u16,
    /// The gRPC port.
    pub grpc_port: u16,
    /// Where shuffle files go (a fresh temporary directory when `None`).
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once (every CPU when 0).
    pub concurrent_tasks: usize,
}

/// Runs a Ballista executor until the process is stopped (SIGTERM, Ctrl-C) or its
/// scheduler tells it to.
pub async fn executor(opts: ExecutorOptions) -> Result<()> {
    let state = session(config())?;
    let config = ExecutorProcessConfig {
        scheduler_host: opts.scheduler.0,
        scheduler_port: opts.scheduler.1,
        bind_host: opts.bind_host.clone(),
        external_host: Some(opts.bind_host),
        port: opts.port,
        grpc_port: opts.grpc_port,
        work_dir: opts.work_dir.map(|d| d.display().to_string()),
        vcores: opts.concurrent_tasks,
        // Wait for a scheduler that is still starting instead of exiting: with Ballista's
        // default (0, one try) an executor started with its scheduler exited with "Could not
        // connect to scheduler" in 3 of 4 runs of kreq's Ballista test. Any other value makes
        // Ballista 55 retry every 0.5 s with no end (its deadline check measures the age of a
        // fresh `Instant`): an executor with no scheduler still waited after 75 s.
        scheduler_connect_timeout_seconds: 60,
        override_config_producer: Some(Arc::new(config)),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|source| Error::Ballista {
            what: "executor",
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_grpc_urls() {
        assert_eq!(
            scheduler_url("df://127.0.0.1:50123").ok().as_deref(),
            Some("http://127.0.0.1:50123")
        );
        assert_eq!(
            scheduler_url("df://sched").ok().as_deref(),
            Some("http://sched:50050")
        );
        assert!(scheduler_url("http://sched:1").is_err());
        assert!(scheduler_url("df://:1").is_err());
        assert!(scheduler_url("df://h:99999").is_err());
    }
}
