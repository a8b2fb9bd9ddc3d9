//! The `cnredis` binary as users and pods run it. `CNREDIS_BIN` names the binary under test (`make test`
//! points it at the release build); otherwise the one cargo built for this test run is used.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn binary() -> PathBuf {
    let bin = std::env::var_os("CNREDIS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cnredis")));
    assert!(
        bin.is_absolute() && bin.is_file(),
        "binary under test {} is not an absolute path to a file",
        bin.display()
    );
    bin
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", bin.display()))
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cnredis-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn binary_is_statically_linked() {
    let bin = binary();
    let elf = std::fs::read(&bin).unwrap();
    let linkage = elf_linkage(&elf);
    assert_eq!(
        linkage.interpreter,
        None,
        "{} asks for a dynamic loader",
        bin.display()
    );
    assert!(
        linkage.needed == 0,
        "{} needs {} shared libraries",
        bin.display(),
        linkage.needed
    );
}

#[test]
fn bootstrap_installs_a_runnable_copy_with_mode_0755() {
    let dir = scratch_dir("bootstrap");
    let dest = dir.join("controller/cnredis");
    let out = run(&binary(), &["bootstrap", dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "bootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let original = run(&binary(), &["version"]);
    let copy = run(&dest, &["version"]);
    assert!(copy.status.success());
    assert_eq!(copy.stdout, original.stdout);
    assert_eq!(
        String::from_utf8_lossy(&copy.stdout).trim(),
        format!("cnredis {}", env!("CARGO_PKG_VERSION"))
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bootstrap_to_an_impossible_destination_fails_with_the_reason() {
    let dir = scratch_dir("bootstrap-fail");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = run(&binary(), &["bootstrap", file.join("cnredis").to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot create directory"), "stderr: {stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn crd_prints_exactly_the_checked_in_crds() {
    let out = run(&binary(), &["crd"]);
    assert!(out.status.success());
    let printed: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut checked_in: Vec<serde_json::Value> = files
        .iter()
        .map(|path| serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
        .collect();
    let mut printed_sorted = printed.clone();
    let by_name = |v: &serde_json::Value| v["metadata"]["name"].as_str().unwrap().to_string();
    printed_sorted.sort_by_key(by_name);
    checked_in.sort_by_key(by_name);
    assert_eq!(printed.len(), 3, "expected three CRDs");
    assert!(
        printed_sorted == checked_in,
        "`cnredis crd` differs from manifests/crds; run `make generate`"
    );
}

#[test]
fn controller_without_its_image_is_a_usage_error_naming_the_flag() {
    let out = Command::new(binary())
        .arg("controller")
        .env_remove("CNREDIS_OPERATOR_IMAGE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--operator-image"));
}

#[test]
fn instance_run_without_its_identity_is_a_usage_error_naming_the_flag() {
    let out = std::process::Command::new(binary())
        .args(["instance", "run"])
        .env_remove("POD_NAME")
        .env_remove("CNREDIS_CLUSTER_NAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster-name"));
}

#[test]
fn an_invalid_log_format_is_a_usage_error() {
    let out = run(&binary(), &["--log-format", "xml", "version"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'xml'"));
}

struct Linkage {
    interpreter: Option<String>,
    needed: usize,
}

/// Reads the program headers of a 64-bit little-endian ELF file: the PT_INTERP loader a dynamically
/// linked executable names, and the DT_NEEDED entries of its dynamic section (a static-pie binary has
/// a dynamic section for its own relocations, but needs no library).
fn elf_linkage(elf: &[u8]) -> Linkage {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not a 64-bit ELF file");
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let mut linkage = Linkage {
        interpreter: None,
        needed: 0,
    };
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        let (offset, size) = (u64_at(header + 8), u64_at(header + 32));
        match u32_at(header) {
            3 => {
                let path = &elf[offset..offset + size];
                linkage.interpreter = Some(String::from_utf8_lossy(path).trim_end_matches('\0').to_string());
            }
            2 => {
                linkage.needed = elf[offset..offset + size]
                    .chunks_exact(16)
                    .filter(|entry| u64_at_slice(entry) == 1)
                    .count();
            }
            _ => {}
        }
    }
    linkage
}

fn u64_at_slice(entry: &[u8]) -> usize {
    u64::from_le_bytes(entry[..8].try_into().unwrap()) as usize
}
