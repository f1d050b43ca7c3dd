//! `sluice-afl TARGET`: run one target of `sluice-fuzz` under AFL (see `fuzz/run`).
fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = sluice_fuzz::target(&name) else {
        let names: Vec<_> = sluice_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: sluice-afl TARGET (one of {})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| target(data));
}
