//! `cnredis bootstrap DEST`: the init container of every instance pod copies the running executable into
//! a shared emptyDir, so an unmodified engine image can run `cnredis instance run` as PID 1.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;

/// Copies the current executable to `dest` with mode 0755 and returns the number of bytes written.
///
/// The copy goes to a temporary file beside `dest` and is renamed into place, so a pod that restarts
/// its init container never sees a half-written binary.
pub fn install_self(dest: &Path) -> anyhow::Result<u64> {
    let source = std::env::current_exe().context("cannot locate the running executable")?;
    install(&source, dest)
}

fn install(source: &Path, dest: &Path) -> anyhow::Result<u64> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let file_name = dest
        .file_name()
        .with_context(|| format!("destination {} names no file", dest.display()))?;
    let staging = dir.join(format!(".{}.tmp", file_name.to_string_lossy()));
    let written = fs::copy(source, &staging)
        .with_context(|| format!("cannot copy {} to {}", source.display(), staging.display()))?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", staging.display()))?;
    fs::rename(&staging, dest)
        .inspect_err(|_| {
            let _ = fs::remove_file(&staging);
        })
        .with_context(|| format!("cannot move the copy into place at {}", dest.display()))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_with_mode_0755_and_identical_bytes() {
        let dir = tempdir();
        let source = dir.join("source");
        fs::write(&source, b"#!/bin/sh\necho hi\n").unwrap();
        let dest = dir.join("nested/bin/cnredis");
        let written = install(&source, &dest).unwrap();
        assert_eq!(written, 18);
        assert_eq!(fs::read(&dest).unwrap(), fs::read(&source).unwrap());
        assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(
            !dir.join("nested/bin/.cnredis.tmp").exists(),
            "staging file left behind"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn replaces_an_existing_destination() {
        let dir = tempdir();
        let source = dir.join("source");
        fs::write(&source, b"new").unwrap();
        let dest = dir.join("cnredis");
        fs::write(&dest, b"old contents").unwrap();
        install(&source, &dest).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reports_an_unwritable_destination() {
        let dir = tempdir();
        let source = dir.join("source");
        fs::write(&source, b"x").unwrap();
        let blocker = dir.join("file");
        fs::write(&blocker, b"").unwrap();
        let err = install(&source, &blocker.join("cnredis")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot create directory"), "{err:#}");
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "cnredis-bootstrap-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
