//! Container logs in the CRI format the upstream kubelet reads: one file per container run, each line
//! `<RFC3339 timestamp with nanoseconds> stdout|stderr F|P <content>` (`P` marks a piece of a line longer
//! than [`MAX_LINE`]).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Longer lines are split into partial (`P`) records, as containerd does.
const MAX_LINE: usize = 16 * 1024;

/// Copies a run's stdout and stderr into `path` until both streams end.
pub fn spawn_writer(
    path: PathBuf,
    stdout: impl AsyncRead + Unpin + Send + 'static,
    stderr: impl AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
    tokio::spawn(pump(stdout, "stdout", tx.clone()));
    tokio::spawn(pump(stderr, "stderr", tx));
    tokio::spawn(async move {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await;
        let mut file = match file {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open container log; output is dropped");
                while rx.recv().await.is_some() {}
                return;
            }
        };
        while let Some(record) = rx.recv().await {
            if let Err(e) = file.write_all(&record).await {
                tracing::warn!(path = %path.display(), error = %e, "writing container log");
            }
        }
        let _ = file.flush().await;
    })
}

async fn pump(stream: impl AsyncRead + Unpin, name: &'static str, tx: mpsc::Sender<Vec<u8>>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                for record in records(SystemTime::now(), name, &line) {
                    if tx.send(record).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Formats one line read from a stream (with or without its trailing newline) as CRI records.
pub fn records(at: SystemTime, stream: &str, line: &[u8]) -> Vec<Vec<u8>> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let stamp = rfc3339_nanos(at);
    let chunks: Vec<&[u8]> = if content.is_empty() {
        vec![content]
    } else {
        content.chunks(MAX_LINE).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let tag = if i == last { "F" } else { "P" };
            let mut record = format!("{stamp} {stream} {tag} ").into_bytes();
            record.extend_from_slice(chunk);
            record.push(b'\n');
            record
        })
        .collect()
}

/// `2016-10-06T00:17:09.669794202Z`: UTC, always nine fractional digits.
pub fn rfc3339_nanos(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc_with_nanoseconds() {
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        assert_eq!(rfc3339_nanos(t), "2016-10-06T00:17:09.669794202Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_nanos(leap), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn a_line_becomes_one_full_record_without_its_newline() {
        let records = records(UNIX_EPOCH, "stderr", b"hello world\n");
        assert_eq!(
            records,
            vec![b"1970-01-01T00:00:00.000000000Z stderr F hello world\n".to_vec()]
        );
    }

    #[test]
    fn an_overlong_line_is_split_into_partial_records() {
        let line = vec![b'x'; MAX_LINE + 3];
        let records = records(UNIX_EPOCH, "stdout", &line);
        assert_eq!(records.len(), 2);
        assert!(records[0].starts_with(b"1970-01-01T00:00:00.000000000Z stdout P xxx"));
        assert!(records[1].ends_with(b" stdout F xxx\n"));
    }
}
