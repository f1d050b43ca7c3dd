//! Every input under `fuzz/corpus/<target>/` (the seeds) and `fuzz/regressions/<target>/` (inputs
//! that once broke a property) through its target: what a fuzzer found stays fixed.
use std::path::Path;

#[test]
fn seeds_and_regressions_keep_every_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut ran = 0;
    for dir in ["corpus", "regressions"] {
        for (name, target) in sluice_fuzz::TARGETS {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                assert_ne!(dir, "corpus", "no seed corpus for target {name}");
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let result = std::panic::catch_unwind(|| target(&data));
                assert!(
                    result.is_ok(),
                    "{name}: {} breaks a property",
                    path.display()
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= sluice_fuzz::TARGETS.len(), "only {ran} inputs");
}

#[test]
fn fields_cut_at_nul_bytes_and_the_last_takes_the_rest() {
    let [a, b, c] = sluice_fuzz::fields::<3>(b"one\0two\0three\0four");
    assert_eq!((a, b, c), (&b"one"[..], &b"two"[..], &b"three\0four"[..]));
    let [a, b] = sluice_fuzz::fields::<2>(b"only");
    assert_eq!((a, b), (&b"only"[..], &b""[..]));
}
