//! What can go wrong in the filters, by where it happens: a call ([`FilterError`]), a change or
//! a load ([`SwapError`], naming its [`Step`]), the chain at start ([`LoadChainError`]).
use serde::{Deserialize, Serialize};
use sluice_store::StoreError;

/// The step of a change (or of loading a module) that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// The request body: an upload that could not be read.
    Upload,
    /// The slot's config: not YAML/JSON.
    Config,
    /// Not a component, or the compiler refused it.
    Compile,
    /// It does not match the `sluice:filter/router` world.
    Link,
    /// `init` refused the config, trapped or timed out.
    Init,
    /// The self-test `route` call failed.
    SelfTest,
    /// The store (L3) is not configured, down, or failed.
    Store,
    /// The slot name is not valid, or no such slot is in the chain.
    Slot,
    /// No such stored version.
    Version,
    /// A chain order that does not name every slot once.
    Order,
}

impl Step {
    /// Its name, as in answers and logs (`self-test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Upload => "upload",
            Step::Config => "config",
            Step::Compile => "compile",
            Step::Link => "link",
            Step::Init => "init",
            Step::SelfTest => "self-test",
            Step::Store => "store",
            Step::Slot => "slot",
            Step::Version => "version",
            Step::Order => "order",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change that did not happen (or a module that did not load): which step failed, and why.
/// The running version is untouched.
#[derive(Debug, Clone)]
pub struct SwapError {
    /// The step.
    pub step: Step,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for SwapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            // a request that names something missing or wrong says just that
            Step::Version | Step::Slot | Step::Order => f.write_str(&self.message),
            step => write!(f, "{step} failed: {}", self.message),
        }
    }
}

impl std::error::Error for SwapError {}

impl SwapError {
    /// `step` failed with `message`.
    pub fn new(step: Step, message: impl Into<String>) -> Self {
        Self {
            step,
            message: message.into(),
        }
    }
}

impl From<StoreError> for SwapError {
    fn from(e: StoreError) -> Self {
        SwapError::new(Step::Store, e.to_string())
    }
}

/// Why a filter call failed.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The filter trapped (a panic, an unreachable, a bad host call).
    #[error("filter '{slot}' trapped in {step}: {message}")]
    Trap {
        /// The slot.
        slot: String,
        /// `instantiate`, `init` or `route`.
        step: &'static str,
        /// The trap.
        message: String,
    },
    /// The filter ran past its epoch deadline.
    #[error("filter '{slot}' timed out in {step} (limit {limit_ms} ms)")]
    Timeout {
        /// The slot.
        slot: String,
        /// `instantiate`, `init` or `route`.
        step: &'static str,
        /// The deadline.
        limit_ms: u64,
    },
    /// The filter tried to grow its memory past the limit.
    #[error("filter '{slot}' ran out of memory in {step}")]
    OutOfMemory {
        /// The slot.
        slot: String,
        /// `instantiate`, `init` or `route`.
        step: &'static str,
    },
    /// `init` refused the slot's configuration.
    #[error("filter '{slot}' refused its config: {message}")]
    Init {
        /// The slot.
        slot: String,
        /// What the filter said.
        message: String,
    },
}

/// A slot of `routing.chain` that could not be loaded at start.
#[derive(Debug, thiserror::Error)]
#[error("routing.chain slot '{slot}' ({module}): {cause}")]
pub struct LoadChainError {
    /// The slot.
    pub slot: String,
    /// Its `module`.
    pub module: String,
    /// Why.
    pub cause: ChainCause,
}

/// Why a configured slot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ChainCause {
    /// `builtin:NAME` names no builtin.
    #[error("no builtin filter '{0}'")]
    UnknownBuiltin(String),
    /// The `.wasm` file could not be read.
    #[error("cannot read the module: {0}")]
    Read(#[from] std::io::Error),
    /// The slot's `config` has no JSON form.
    #[error("config is not JSON-compatible: {0}")]
    Config(#[from] serde_json::Error),
    /// A step of loading failed.
    #[error(transparent)]
    Load(#[from] SwapError),
}
