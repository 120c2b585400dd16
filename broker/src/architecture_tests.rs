//! The dependency rules of docs/ARCHITECTURE.md, checked on the source: a forbidden import
//! (`crate::<room>` from a room that may not use it, wire types in a domain room, the storage
//! engine reaching back into its cleaner, a handler or coordinator driving the flusher instead
//! of the replica layer) fails this test.

use std::path::{Path, PathBuf};

/// Each room and the rooms it may use. `test_support` may be used anywhere (tests).
const ALLOWED: &[(&str, &[&str])] = &[
    ("server", &["api", "broker", "config", "metrics", "clock"]),
    (
        "api",
        &[
            "broker", "log", "metadata", "group", "txn", "metrics", "config", "clock",
        ],
    ),
    (
        "broker",
        &[
            "log", "metadata", "group", "txn", "config", "metrics", "clock", "files",
        ],
    ),
    ("group", &["log", "config", "clock", "codec"]),
    // The transaction coordinator stores its state in a topic, as `group/` does.
    ("txn", &["log", "config", "clock", "files", "codec"]),
    ("log", &["config", "files", "clock"]),
    ("metadata", &["config", "files"]),
    ("config", &[]),
    ("files", &[]),
    ("codec", &[]),
    ("clock", &[]),
    ("metrics", &[]),
];

/// Rooms that speak domain types only: no request or response structs.
const DOMAIN_ROOMS: &[&str] = &[
    "log", "metadata", "group", "txn", "config", "files", "codec",
];

/// Inside `log/`, only these files may name the cleaner: the cleaner drives partitions, never
/// the other way round.
const MAY_NAME_THE_CLEANER: &[&str] = &["log/cleaner.rs", "log/mod.rs"];

/// Outside `log/`, writes wait through the replica layer (`log/replica.rs`), never on the
/// flusher: that is where replication will decide when a write is committed.
fn may_name_the_flusher(relative: &str) -> bool {
    relative.starts_with("log/")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The code of a line, without a trailing `//` comment (doc comments included).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// Every `crate::<room>` a line names.
fn rooms_named(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        out.push(&rest[..end]);
    }
    out
}

#[test]
fn rooms_import_only_what_the_rules_allow() -> Result<(), Box<dyn std::error::Error>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    files.sort();
    let mut broken = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&src)?
            .to_string_lossy()
            .replace('\\', "/");
        let room = relative
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs");
        let Some((_, allowed)) = ALLOWED.iter().find(|(r, _)| *r == room) else {
            // lib.rs, main.rs, test_support.rs and this file wire the rooms together.
            continue;
        };
        let text = std::fs::read_to_string(file)?;
        for (number, line) in text.lines().enumerate() {
            let line = code(line);
            for named in rooms_named(line) {
                if named != room && named != "test_support" && !allowed.contains(&named) {
                    broken.push(format!("{relative}:{}: {room} uses {named}", number + 1));
                }
            }
            if DOMAIN_ROOMS.contains(&room) && line.contains("kafka_protocol::messages") {
                broken.push(format!("{relative}:{}: wire types in {room}", number + 1));
            }
            if !may_name_the_flusher(&relative)
                && (line.contains("Flusher") || line.contains("flusher::"))
            {
                broken.push(format!("{relative}:{}: names the flusher", number + 1));
            }
            if room == "log"
                && !MAY_NAME_THE_CLEANER.contains(&relative.as_str())
                && line.contains("cleaner::")
            {
                broken.push(format!("{relative}:{}: names the cleaner", number + 1));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports the rules in docs/ARCHITECTURE.md forbid:\n{}",
        broken.join("\n")
    );
    Ok(())
}

/// The checker finds what it is meant to find.
#[test]
fn the_checker_sees_imports() {
    assert_eq!(
        rooms_named("use crate::api::x; let y = crate::log::z();"),
        ["api", "log"]
    );
    assert_eq!(code("use crate::log; // crate::api"), "use crate::log; ");
    assert!(rooms_named(code("//! not crate::server")).is_empty());
}
