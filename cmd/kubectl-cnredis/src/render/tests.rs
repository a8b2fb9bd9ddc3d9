use std::path::Path;

use super::*;

/// Every recorded cluster (`tests/status/*.json`, the `-o json` of real clusters) renders exactly as
/// its reviewed `.txt` (and `.verbose.txt`). `UPDATE_GOLDEN=1` rewrites them; review the diff.
#[test]
fn recorded_clusters_render_as_reviewed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status");
    let mut recorded: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    recorded.sort();
    assert!(
        recorded.len() >= 3,
        "recorded states in {}: {recorded:?}",
        dir.display()
    );
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for json in recorded {
        let observed: Observed = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", json.display()));
        for (suffix, verbose) in [("txt", false), ("verbose.txt", true)] {
            let got = status(
                &observed,
                Style {
                    colour: false,
                    verbose,
                },
            );
            let golden = json.with_extension(suffix);
            if update {
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&golden).unwrap_or_default();
            if got != want {
                let diff = similar::TextDiff::from_lines(&want, &got);
                mismatches.push(format!("{}:\n{}", golden.display(), diff.unified_diff()));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn colour_is_only_added_when_asked_for() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status");
    let json = std::fs::read_to_string(dir.join("healthy.json")).unwrap();
    let observed: Observed = serde_json::from_str(&json).unwrap();
    let plain = status(
        &observed,
        Style {
            colour: false,
            verbose: false,
        },
    );
    let coloured = status(
        &observed,
        Style {
            colour: true,
            verbose: false,
        },
    );
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[32mHealthy\x1b[0m"), "{coloured}");
}

#[test]
fn ages_read_like_kubectl() {
    for (s, want) in [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (7_199, "119m"),
        (7_200, "2h"),
        (172_800, "2d"),
    ] {
        assert_eq!(seconds(s), want, "{s}");
    }
}

#[test]
fn sizes_use_binary_units() {
    for (b, want) in [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (3 << 30, "3.0 GiB"),
    ] {
        assert_eq!(bytes(b), want, "{b}");
    }
}
