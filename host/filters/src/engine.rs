//! The process-wide wasmtime [`Engine`] (component model, async, epoch interruption, pooling
//! allocator) and compilation with two caches: in memory by content hash, and on disk by content
//! hash and wasmtime version, so a restart does not recompile.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// One epoch tick: the unit of filter deadlines.
pub const TICK: Duration = Duration::from_millis(1);

/// The largest `filters.memory_limit_mb` (the pooling allocator reserves this much per slot).
pub const MAX_MEMORY_MB: u64 = 512;

/// Compiled components kept in memory for reuse beyond those slots hold: every upload of a new
/// module would otherwise keep its machine code forever.
pub const COMPILED_KEPT: u64 = 32;

struct Shared {
    engine: Engine,
    /// Recently compiled components by sha256, bounded; a component a slot runs lives on in the
    /// slot, and is freed once no slot and no cache entry holds it.
    compiled: moka::sync::Cache<String, Component>,
    /// One compilation per sha256 at a time: a second caller (an upload and the same module
    /// sent ahead by another instance) waits for the first and takes its result.
    compiling: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(512)
            .total_core_instances(2048)
            .total_memories(512)
            .total_tables(2048)
            .max_memory_size((MAX_MEMORY_MB << 20) as usize)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(32);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .memory_reservation(1 << 30)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).expect("the filter engine configuration is valid");
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                match ticker.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            })
            .expect("epoch ticker thread");
        Shared {
            engine,
            compiled: moka::sync::Cache::new(COMPILED_KEPT),
            compiling: Mutex::new(HashMap::new()),
        }
    })
}

/// The engine every filter runs on.
pub fn engine() -> &'static Engine {
    &shared().engine
}

/// Hex sha256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where compiled modules are cached on disk: the configured directory, `None` when turned off.
pub fn cache_dir(configured: Option<&str>) -> Option<PathBuf> {
    match configured {
        Some("") => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(base.join("sluice").join("modules"))
        }
    }
}

/// How a component was obtained (for logs and the startup-time benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Already compiled in this process.
    Memory,
    /// Loaded from the on-disk cache.
    Disk,
    /// Compiled now.
    Compiled,
}

/// A compilation's turn is only for that compilation: forgotten once it is done, whatever happens.
struct ForgetTurn(Arc<str>);

impl Drop for ForgetTurn {
    fn drop(&mut self) {
        shared().compiling.lock().unwrap().remove(&*self.0);
    }
}

/// Compile `bytes` (a component) or fetch it from a cache. The error says what is wrong with it.
pub fn compile(
    bytes: &[u8],
    disk: Option<&std::path::Path>,
) -> Result<(Arc<str>, Component, Source), CompileError> {
    let hash: Arc<str> = sha256(bytes).into();
    let shared = shared();
    if let Some(c) = shared.compiled.get(&*hash) {
        return Ok((hash, c, Source::Memory));
    }
    let turn = shared
        .compiling
        .lock()
        .unwrap()
        .entry(hash.to_string())
        .or_default()
        .clone();
    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
    let _forget = ForgetTurn(hash.clone());
    if let Some(c) = shared.compiled.get(&*hash) {
        return Ok((hash, c, Source::Memory));
    }
    check_kind(bytes)?;
    let file = disk.map(|d| d.join(format!("{hash}-{}.cwasm", engine_fingerprint())));
    let mut source = Source::Compiled;
    let mut component = None;
    if let Some(f) = file.as_deref().filter(|f| f.exists()) {
        match deserialize(f) {
            Ok(c) => {
                component = Some(c);
                source = Source::Disk;
            }
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "ignoring unusable compiled-module cache entry")
            }
        }
    }
    let component = match component {
        Some(c) => c,
        None => {
            let c = Component::new(&shared.engine, bytes).map_err(CompileError::Invalid)?;
            if let Some(f) = &file {
                if let Err(e) = store_compiled(&c, f) {
                    tracing::warn!(file = %f.display(), error = %e, "could not write the compiled-module cache");
                }
            }
            c
        }
    };
    shared.compiled.insert(hash.to_string(), component.clone());
    Ok((hash, component, source))
}

/// Why bytes could not become a component.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// No `\0asm` header.
    #[error("not WebAssembly (no \\0asm header)")]
    NotWasm,
    /// A core module, not a component.
    #[error("a core WebAssembly module, not a component: build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule,
    /// A layer this wasmtime does not know.
    #[error("unknown WebAssembly layer {0}")]
    UnknownLayer(u16),
    /// The compiler refused it.
    #[error("not a valid component: {0:#}")]
    Invalid(wasmtime::Error),
}

/// Refuse what is not a component before handing it to the compiler, with a plain message.
fn check_kind(bytes: &[u8]) -> Result<(), CompileError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(CompileError::NotWasm);
    }
    // bytes 4..6: version; bytes 6..8: layer (0 = core module, 1 = component)
    match u16::from_le_bytes([bytes[6], bytes[7]]) {
        0 => Err(CompileError::CoreModule),
        1 => Ok(()),
        layer => Err(CompileError::UnknownLayer(layer)),
    }
}

/// Identifies the wasmtime build and engine settings an artifact is valid for.
fn engine_fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine().precompile_compatibility_hash().hash(&mut h);
        format!("wasmtime-{:016x}", h.finish())
    })
}

fn store_compiled(component: &Component, file: &std::path::Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, file)
}

#[allow(unsafe_code)]
fn deserialize(file: &std::path::Path) -> wasmtime::Result<Component> {
    // SAFETY: the file was written by `store_compiled` from `Component::serialize` of this engine
    // configuration, under a name keyed by the sha256 of the source component and the wasmtime
    // version; wasmtime itself refuses artifacts from another version or configuration.
    unsafe { Component::deserialize_file(engine(), file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_components_are_refused_with_a_plain_reason() {
        let reason = |bytes: &[u8]| compile(bytes, None).err().unwrap().to_string();
        assert!(reason(b"hello world").contains("not WebAssembly"));
        let core = b"\0asm\x01\0\0\0";
        assert!(reason(core).contains("core WebAssembly module"));
        let broken_component = b"\0asm\x0d\0\x01\0garbage";
        assert!(reason(b"\0asm\x0d\0\x07\0").contains("layer"));
        assert!(reason(broken_component).contains("not a valid component"));
    }

    /// `bytes` with a custom section named `tag` appended: the same component, another sha256.
    fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
        let mut payload = vec![tag.len() as u8];
        payload.extend_from_slice(tag.as_bytes());
        let mut out = bytes.to_vec();
        out.push(0); // custom section
        out.push(payload.len() as u8);
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn never_seen_modules_do_not_pile_up_compiled_code() {
        let bytes = crate::builtin::bytes("routing-rules").unwrap();
        let n = COMPILED_KEPT as usize + 8;
        for i in 0..n {
            let v = variant(bytes, &format!("upload-{i}"));
            compile(&v, None).expect("a custom section keeps it valid");
        }
        shared().compiled.run_pending_tasks();
        let kept = shared().compiled.entry_count();
        assert!(
            kept <= COMPILED_KEPT,
            "{kept} compiled components kept after {n} compiles"
        );
        assert!(
            shared().compiling.lock().unwrap().is_empty(),
            "turns are forgotten"
        );
    }

    #[test]
    fn compiled_components_are_cached_on_disk_and_in_memory() {
        let dir = std::env::temp_dir().join(format!("sluice-cache-test-{}", std::process::id()));
        let bytes = crate::builtin::bytes("stochastic").unwrap();
        let (hash, _, first) = compile(bytes, Some(&dir)).unwrap();
        assert_eq!(hash.len(), 64);
        assert!(matches!(first, Source::Compiled | Source::Memory));
        if first == Source::Compiled {
            let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
            assert_eq!(files.len(), 1);
            // a second process would find it on disk; this one finds it in memory
            assert_eq!(compile(bytes, Some(&dir)).unwrap().2, Source::Memory);
            let f = dir.join(format!("{hash}-{}.cwasm", engine_fingerprint()));
            assert!(deserialize(&f).is_ok());
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
