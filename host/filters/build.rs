//! Builds the bundled routing filters (the `guest-filters/` workspace) for `wasm32-wasip2` and
//! puts the `.wasm` files in OUT_DIR, so `cargo build` / `cargo run` alone work on a fresh machine.
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// Crates of the guest workspace whose components the host embeds or its tests load.
const FILTERS: &[&str] = &["query_count", "stochastic", "routing_rules", "hostile"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let guests = root.join("guest-filters");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!(
        "cargo:rerun-if-changed={}",
        guests.join("Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        guests.join("Cargo.lock").display()
    );
    for dir in [
        "sdk",
        "query-count",
        "stochastic",
        "routing-rules",
        "hostile",
    ] {
        println!("cargo:rerun-if-changed={}", guests.join(dir).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_target();
    // The guest build gets its own target dir (it must not wait on the lock of the outer build).
    let guest_target = out.join("guest-target");
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&guests)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &guest_target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run {cargo} to build guest-filters: {e}"));
    assert!(
        status.success(),
        "building guest-filters for {TARGET} failed (see the errors above)"
    );
    for name in FILTERS {
        let built = guest_target
            .join(TARGET)
            .join("release")
            .join(format!("{name}.wasm"));
        let dest = out.join(format!("{name}.wasm"));
        std::fs::copy(&built, &dest)
            .unwrap_or_else(|e| panic!("{} was not built: {e}", built.display()));
    }
    println!(
        "cargo:rustc-env=SLUICE_HOSTILE_WASM={}",
        out.join("hostile.wasm").display()
    );
}

/// Install the wasm32-wasip2 standard library with rustup when it is missing.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = sysroot
        .map(|s| Path::new(&s).join("lib/rustlib").join(TARGET).exists())
        .unwrap_or(false);
    if !installed {
        println!("cargo:warning=installing the {TARGET} target with rustup");
        let ok = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed"
        );
    }
}
