//! The command line: every subcommand and its flags (clap).
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "A gateway in front of several Trino clusters"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (YAML). Without one, embedded defaults are used.
        #[arg(short, long, env = "SLUICE_CONFIG")]
        config: Option<PathBuf>,
        /// Print the bound addresses as one JSON line on stdout (for scripts using port 0).
        #[arg(long)]
        print_addrs: bool,
    },
    /// Validate a configuration file; exits non-zero with the reason.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Start Sluice in front of in-process fake Trino clusters and print how to connect.
    Demo {
        /// Where clients connect.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener.
        #[arg(long, default_value = "127.0.0.1:8081")]
        admin_listen: SocketAddr,
        /// How many fake clusters (split over groups `adhoc` and `etl`).
        #[arg(long, default_value_t = 2)]
        clusters: usize,
    },
    /// Drive the routing filters of a running gateway through its admin API.
    Filter {
        /// The admin listener (`admin.listen` of the gateway).
        #[arg(
            long,
            env = "SLUICE_ADMIN_URL",
            default_value = "http://127.0.0.1:8081",
            global = true
        )]
        admin_url: String,
        /// Print the server's JSON answer instead of a summary.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: FilterCommand,
    },
    /// Run a fake Trino coordinator (for tests and benchmarks).
    FakeTrino {
        /// Listen address (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Cluster name shown in result rows.
        #[arg(long, default_value = "fake")]
        name: String,
        /// Result pages per query.
        #[arg(long, default_value_t = 3)]
        pages: u32,
        /// Rows per page.
        #[arg(long, default_value_t = 2)]
        rows_per_page: u32,
        /// Polls a query stays queued.
        #[arg(long, default_value_t = 1)]
        queued_polls: u32,
        /// Delay before each statement answer, in ms.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Ignore X-Forwarded-* (like a coordinator without process-forwarded).
        #[arg(long)]
        ignore_forwarded: bool,
        /// Keep at most this many queries, forgetting the oldest never polled (0: all).
        #[arg(long, default_value_t = 0)]
        max_queries: usize,
    },
}

/// `sluice filter …` (the token comes from `SLUICE_ADMIN_TOKEN`).
#[derive(Subcommand)]
pub enum FilterCommand {
    /// Each slot with its active version, sha256 and counters.
    List,
    /// Upload a component into a slot (created at the end of the chain if new).
    Push {
        slot: String,
        /// The component (`cargo build --target wasm32-wasip2 --release` output).
        file: PathBuf,
        /// The slot's config, YAML or JSON (default: none).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the slot's module with a new config (YAML or JSON file).
    Config { slot: String, file: PathBuf },
    /// Go back to the version before the active one.
    Rollback { slot: String },
    /// Make a stored version active again.
    Activate { slot: String, version: i64 },
    /// The versions of a slot kept in the store.
    Versions { slot: String },
    /// Put the chain's slots in this order.
    Order {
        #[arg(required = true)]
        slots: Vec<String>,
    },
    /// Which instance of the fleet runs which version.
    Fleet,
    /// Write a filter shipped in this binary (query-count, stochastic, routing-rules) to a file.
    Builtin { name: String, file: PathBuf },
}
