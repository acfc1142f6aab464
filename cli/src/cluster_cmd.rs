//! `kreq cluster scheduler|executor`: Ballista's processes with kreq's functions, for
//! `kreq sql --cluster`. Built with the cargo feature `cluster`; without it, these commands
//! and `--cluster` say how to get it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Arguments of `kreq cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub role: Role,
}

/// Which process to run.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// A Ballista scheduler: takes queries from `kreq sql --cluster df://HOST:PORT` and hands
    /// their stages to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
    },
    /// A Ballista executor: runs stages for a scheduler. Every executor must read the
    /// warehouse at the path the client opened (one machine, or a shared file system).
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Host to listen on and to register with the scheduler.
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// Arrow Flight port (results are fetched from it).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// gRPC port.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Directory for shuffle files (a temporary one by default).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Tasks run at once (0: one per CPU).
        #[arg(long, default_value_t = 0)]
        concurrent_tasks: usize,
    },
}

/// Why a build without the feature cannot run on a cluster.
#[cfg(not(feature = "cluster"))]
pub const NOT_BUILT: &str = "this kreq was built without Ballista; build it with \
    `cargo build --release -p kreq --features cluster`";

/// Runs `kreq cluster`.
#[cfg(not(feature = "cluster"))]
pub fn run(_args: ClusterArgs) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

/// Runs `kreq cluster`.
#[cfg(feature = "cluster")]
pub fn run(args: ClusterArgs) -> Result<()> {
    use anyhow::Context;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match args.role {
            Role::Scheduler { bind } => Ok(kreq_cluster::scheduler(bind).await?),
            Role::Executor {
                scheduler,
                bind_host,
                port,
                grpc_port,
                work_dir,
                concurrent_tasks,
            } => {
                let (host, sport) = scheduler
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                    .with_context(|| format!("--scheduler {scheduler:?} is not HOST:PORT"))?;
                Ok(kreq_cluster::executor(kreq_cluster::ExecutorOptions {
                    scheduler: (host, sport),
                    bind_host,
                    port,
                    grpc_port,
                    work_dir,
                    concurrent_tasks,
                })
                .await?)
            }
        }
    })
}
