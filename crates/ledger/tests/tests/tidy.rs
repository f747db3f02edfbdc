//! Machine-checked rules of the ledger crate (STYLE §7 "Ledger").

use std::{fs, path::Path};

fn sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let text = fs::read_to_string(&path).unwrap();
            // Unit tests at the end of a file may unwrap.
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.push((path.display().to_string(), code));
        }
    }
    out.sort();
    out
}

#[test]
fn ledger_depends_on_no_agora_crate_but_types() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap();
    for line in deps.lines().filter(|line| line.starts_with("agora-")) {
        assert!(line.starts_with("agora-types"), "{line}");
    }
    for banned in ["tokio", "rand", "async", "redb", "commonware"] {
        assert!(!deps.contains(banned), "ledger must not depend on {banned}");
    }
}

#[test]
fn ledger_code_has_no_unwrap_panic_clock_float_or_hashmap() {
    let banned = [
        ".unwrap()",
        "panic!(",
        "unreachable!(",
        "todo!(",
        "HashMap",
        "HashSet",
        "SystemTime",
        "Instant",
        "f32",
        "f64",
        "thread_rng",
    ];
    for (path, code) in sources() {
        for word in banned {
            assert!(!code.contains(word), "{path} contains {word}");
        }
    }
}
