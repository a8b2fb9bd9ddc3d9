//! Faults the chaos suite injects into an instance manager: compiled only with the `failpoints` feature
//! (the build `make build` makes for the tests), absent from any other build.
//!
//! A file [`FILE`] in the data directory names the calls that fail, one per line: `promote` and
//! `demote` make `POST /v1/promote` and `POST /v1/demote` answer 500 without changing anything. The
//! file is read on every call, so a test arms and disarms a fault by writing it and removing it.

use std::path::Path;

/// The file in the data directory that arms failpoints.
pub const FILE: &str = "cnredis-failpoints";

/// Whether the failpoint `name` is armed in `data_dir`.
#[cfg(feature = "failpoints")]
pub fn armed(data_dir: &Path, name: &str) -> bool {
    std::fs::read_to_string(data_dir.join(FILE))
        .is_ok_and(|armed| armed.lines().any(|line| line.trim() == name))
}

/// Whether the failpoint `name` is armed: never, in a build without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
pub fn armed(_data_dir: &Path, _name: &str) -> bool {
    false
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;

    #[test]
    fn a_failpoint_is_armed_by_its_line_in_the_file_and_only_then() {
        let dir = std::env::temp_dir().join(format!("cnredis-failpoints-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!armed(&dir, "promote"));
        std::fs::write(dir.join(FILE), "demote\n promote \n").unwrap();
        let armed_now = [
            armed(&dir, "promote"),
            armed(&dir, "demote"),
            armed(&dir, "fence"),
        ];
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(armed_now, [true, true, false]);
    }
}
