//! Where a gateway's configuration comes from, so a reload reads it again the same way: Sluice's
//! own YAML, or another format translated into it (Trino Gateway's file).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_config::Config;

/// Reads a file into a checked [`Config`]; the error names what is wrong.
pub type Loader = Arc<dyn Fn(&Path) -> Result<Config, String> + Send + Sync>;

/// A configuration file and how it is read.
#[derive(Clone)]
pub struct ConfigSource {
    /// The file.
    pub path: PathBuf,
    load: Loader,
}

impl ConfigSource {
    /// A file read by `load`.
    pub fn with_loader(path: PathBuf, load: Loader) -> Self {
        Self { path, load }
    }

    /// Read the file again.
    pub fn load(&self) -> Result<Config, String> {
        (self.load)(&self.path)
    }
}

impl From<PathBuf> for ConfigSource {
    /// Sluice's own YAML.
    fn from(path: PathBuf) -> Self {
        Self::with_loader(
            path,
            Arc::new(|p: &Path| {
                Config::load_with(p, &sluice_filters::check_config).map_err(|e| e.to_string())
            }),
        )
    }
}
