//! The command line: every subcommand and its flags (clap).
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

/// How the commands that drive a running gateway reach its admin API.
#[derive(Args)]
pub struct AdminArgs {
    /// The admin listener (`admin.listen` of the gateway).
    #[arg(
        long,
        env = "SLUICE_ADMIN_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub admin_url: String,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (YAML). Without one, embedded defaults are used.
        #[arg(
            short,
            long,
            env = "SLUICE_CONFIG",
            conflicts_with = "trino_gateway_config"
        )]
        config: Option<PathBuf>,
        /// Trino Gateway's configuration file, read as it is (docs/migrate.md); keys Sluice does
        /// not honour are listed at start.
        #[arg(long)]
        trino_gateway_config: Option<PathBuf>,
        /// Print the bound addresses as one JSON line on stdout (for scripts using port 0).
        #[arg(long)]
        print_addrs: bool,
    },
    /// Validate a configuration file; exits non-zero with the reason.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
        /// The file is Trino Gateway's: list what it becomes and every key not honoured.
        #[arg(long)]
        trino_gateway: bool,
    },
    /// Write Sluice's configuration equivalent to a Trino Gateway configuration file (secrets as
    /// environment references; every key not honoured named in comments).
    ConvertConfig {
        /// Trino Gateway's configuration file.
        file: PathBuf,
        /// Where to write (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Work with the store (L3).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
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
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: FilterCommand,
    },
    /// Change the backends of a running gateway (and its fleet) through its admin API.
    Backend {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Make a running gateway re-read its configuration file (as SIGHUP does).
    Reload {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Work with routing rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Run a fake Trino coordinator (for tests and benchmarks); prints its address as JSON.
    #[command(after_help = sluice_fake_trino::SQL_OPTIONS_HELP)]
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
        /// Serve HTTPS with this PEM certificate chain (with --tls-key).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's PEM key.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
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

/// `sluice backend …` (the token comes from `SLUICE_ADMIN_TOKEN`).
#[derive(Subcommand)]
pub enum BackendCommand {
    /// Every backend: group, state, health, running and queued queries.
    List,
    /// Add a backend; it takes new queries once healthy (unless `--inactive`).
    Add {
        name: String,
        /// Where Sluice sends requests (`http://host:port` of the coordinator).
        url: String,
        /// Routing group.
        #[arg(long, default_value = "adhoc")]
        group: String,
        /// The URL users see (its web UI), if different.
        #[arg(long)]
        external_url: Option<String>,
        /// Added deactivated.
        #[arg(long)]
        inactive: bool,
        /// Where its running/queued counts come from: ui_api, metrics, info_only.
        #[arg(long)]
        stats: Option<String>,
        /// Rewrite nextUri in its answers (coordinators that ignore X-Forwarded-*).
        #[arg(long)]
        rewrite_next_uri: bool,
        /// Queries Sluice runs on it at once at most; beyond, queries wait in the queue.
        #[arg(long)]
        max_queries: Option<u32>,
    },
    /// Change some of a backend's settings.
    Update {
        name: String,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// `""` clears it.
        #[arg(long)]
        external_url: Option<String>,
        /// ui_api, metrics, info_only; `""`: health.stats.
        #[arg(long)]
        stats: Option<String>,
        #[arg(long)]
        rewrite_next_uri: Option<bool>,
        /// Queries Sluice runs on it at once at most; `""` for no limit.
        #[arg(long)]
        max_queries: Option<String>,
    },
    /// Remove a backend (refused while it runs queries, unless `--force`).
    Remove {
        name: String,
        /// Remove it even while it runs queries (their follow-ups fail).
        #[arg(long)]
        force: bool,
    },
    /// Let a backend take new queries again (ends a drain).
    Activate { name: String },
    /// No new queries; follow-ups of running queries are still served.
    Deactivate { name: String },
    /// No new queries until it runs nothing; `--wait` returns once it is drained.
    Drain {
        name: String,
        /// Wait until the backend reports `drained`.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
}

/// `sluice store …`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy Trino Gateway's clusters (`gateway_backend`) and query history into Sluice's own
    /// tables. Rows already there are kept; running it twice copies nothing twice.
    Import {
        /// Trino Gateway's database: its `jdbc:postgresql://…` / `jdbc:mysql://…` URL (user and
        /// password from `--user` and `SLUICE_TG_DB_PASSWORD`, or its `user=`/`password=`
        /// parameters), or a `postgres://` / `mysql://` URL.
        #[arg(long)]
        from_trino_gateway: String,
        /// The user for a JDBC URL.
        #[arg(long)]
        user: Option<String>,
        /// Sluice's store to copy into (default: `store.url` of `--config`).
        #[arg(long)]
        store_url: Option<String>,
        /// Sluice's configuration file naming the store.
        #[arg(short, long, env = "SLUICE_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// `sluice rules …`.
#[derive(Subcommand)]
pub enum RulesCommand {
    /// Translate a Trino Gateway routing-rules file (MVEL) into a `builtin:routing-rules` slot for
    /// `routing.chain`, printed as YAML; names every condition it cannot translate and exits 1.
    Import {
        /// The Trino Gateway rules file (YAML documents with name, priority, condition, actions).
        file: PathBuf,
        /// The slot name to give the filter.
        #[arg(long, default_value = "rules")]
        slot: String,
        /// The group when no rule matches (Trino Gateway's `routing.defaultRoutingGroup`); without
        /// it, unmatched queries go on to the next slot or the default group.
        #[arg(long)]
        default_group: Option<String>,
    },
}
