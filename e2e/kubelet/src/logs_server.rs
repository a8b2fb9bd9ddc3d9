//! The kubelet API subset that `kubectl logs` goes through: HTTPS with client certificates (the API
//! server presents its kubelet client certificate), `GET /healthz` and
//! `GET /containerLogs/{namespace}/{pod}/{container}`, which renders CRI-format log files
//! (`<RFC3339Nano> stdout|stderr F|P <text>` per line) with upstream's query parameters.

use std::{
    collections::HashMap,
    io::{Read, Seek, SeekFrom},
    net::SocketAddr,
    path::{Path as FsPath, PathBuf},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tower_service::Service;

/// How often a followed log file is checked for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of one read from the log file (and so of one body chunk before rendering).
const READ_CHUNK: usize = 64 * 1024;

/// Where the server's certificate, its key, and the CA that signs accepted client certificates are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

/// Finds a container's CRI log file; `previous` asks for the one of the previous (terminated)
/// instance. `None` means the pod has no such container (or no previous instance of it); a path
/// that does not exist yet means the container has not started.
pub trait LogLookup: Send + Sync {
    fn log_file(&self, namespace: &str, pod: &str, container: &str, previous: bool) -> Option<PathBuf>;
}

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("container {container} is not valid for pod {pod}")]
    UnknownContainer { pod: String, container: String },
    #[error("previous terminated container \"{container}\" in pod \"{pod}\" not found")]
    NoPreviousContainer { pod: String, container: String },
    #[error("container \"{container}\" in pod \"{pod}\" is waiting to start: no log file yet")]
    NotStarted { pod: String, container: String },
    #[error("invalid query parameter {name}={value:?}: {reason}")]
    BadQuery {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading PEM file {}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}

impl IntoResponse for LogsError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::UnknownContainer { .. } => StatusCode::NOT_FOUND,
            // Upstream's kubelet answers 400 here, which the API server passes on with the message.
            Self::NoPreviousContainer { .. } | Self::NotStarted { .. } | Self::BadQuery { .. } => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// Serves the kubelet API on `addr` until the listener fails; connections without a client
/// certificate signed by `tls.client_ca` are refused during the handshake.
pub async fn serve(addr: SocketAddr, tls: TlsFiles, logs: Arc<dyn LogLookup>) -> anyhow::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&tls)?));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| LogsError::Io {
            action: "listen on",
            path: PathBuf::from(addr.to_string()),
            source,
        })?;
    let app = router(logs);
    tracing::info!(%addr, "kubelet API listening");
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(%error, "accepting a kubelet API connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "kubelet API TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "kubelet API TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| app.clone().call(request));
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "kubelet API connection ended with an error");
            }
        });
    }
}

fn server_config(tls: &TlsFiles) -> Result<ServerConfig, LogsError> {
    let pem_error = |path: &FsPath| {
        let path = path.to_owned();
        move |source| LogsError::Pem { path, source }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(pem_error(&tls.cert))?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(pem_error(&tls.key))?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&tls.client_ca).map_err(pem_error(&tls.client_ca))? {
        roots.add(ca.map_err(pem_error(&tls.client_ca))?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn router(logs: Arc<dyn LogLookup>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .with_state(logs)
}

async fn container_logs(
    State(logs): State<Arc<dyn LogLookup>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    version: axum::http::Version,
) -> Result<Response, LogsError> {
    let options = LogOptions::from_query(&query)?;
    let pod_key = format!("{namespace}/{pod}");
    let Some(path) = logs.log_file(&namespace, &pod, &container, options.previous) else {
        return Err(if options.previous {
            LogsError::NoPreviousContainer { pod, container }
        } else {
            LogsError::UnknownContainer { pod, container }
        });
    };
    tracing::debug!(
        pod = %pod_key, %container, path = %path.display(), ?version, ?options,
        "serving container logs"
    );
    let tail_lines = options.tail_lines;
    let opened = tokio::task::spawn_blocking({
        let path = path.clone();
        move || open_at_tail(&path, tail_lines)
    })
    .await
    .map_err(|join| LogsError::Io {
        action: "open",
        path: path.clone(),
        source: std::io::Error::other(join),
    })?;
    let (file, offset) = match opened {
        Ok(opened) => opened,
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(if options.previous {
                LogsError::NoPreviousContainer { pod, container }
            } else {
                LogsError::NotStarted { pod, container }
            });
        }
        Err(source) => {
            return Err(LogsError::Io {
                action: "open",
                path,
                source,
            });
        }
    };
    let reader = LogReader {
        file: tokio::fs::File::from_std(file),
        path,
        position: offset,
        pending: Vec::new(),
        buffer: vec![0; READ_CHUNK],
        renderer: Renderer::new(&options, jiff::Timestamp::now()),
        follow: options.follow,
        finished: false,
        label: format!("{pod_key}/{container}"),
    };
    let body = futures::stream::unfold(reader, |mut reader| async move {
        reader.next_chunk().await.map(|chunk| (chunk, reader))
    });
    Ok(([(header::CONTENT_TYPE, "text/plain")], Body::from_stream(body)).into_response())
}

fn open_at_tail(path: &FsPath, tail_lines: Option<u64>) -> std::io::Result<(std::fs::File, u64)> {
    let mut file = std::fs::File::open(path)?;
    let offset = match tail_lines {
        Some(lines) => tail_start(&mut file, lines)?,
        None => 0,
    };
    file.seek(SeekFrom::Start(offset))?;
    Ok((file, offset))
}

/// Streams a log file from `position`, rendering whole CRI lines; with `follow` it keeps polling for
/// lines appended later. The stream (and so this reader) is dropped when the client goes away.
struct LogReader {
    file: tokio::fs::File,
    path: PathBuf,
    position: u64,
    /// Bytes read but not yet ending in a newline.
    pending: Vec<u8>,
    /// Read buffer, kept across chunks.
    buffer: Vec<u8>,
    renderer: Renderer,
    follow: bool,
    finished: bool,
    label: String,
}

impl LogReader {
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let chunk = self.next_chunk_using(&mut buffer).await;
        self.buffer = buffer;
        chunk
    }

    async fn next_chunk_using(&mut self, buffer: &mut [u8]) -> Option<std::io::Result<Bytes>> {
        while !self.finished && !self.renderer.exhausted() {
            let read = match self.read_more(buffer).await {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(
                        container = %self.label, path = %self.path.display(), %error,
                        "reading log file failed"
                    );
                    self.finished = true;
                    return Some(Err(error));
                }
            };
            if read == 0 {
                if !self.follow {
                    // A last line without its newline is still being written; show it anyway.
                    let rest = std::mem::take(&mut self.pending);
                    self.finished = true;
                    let out = self.renderer.render_line(&rest);
                    return (!out.is_empty()).then(|| Ok(Bytes::from(out)));
                }
                tokio::time::sleep(FOLLOW_POLL).await;
                continue;
            }
            self.pending.extend_from_slice(&buffer[..read]);
            let complete = match self.pending.iter().rposition(|&b| b == b'\n') {
                Some(last_newline) => last_newline + 1,
                None => continue,
            };
            let lines: Vec<u8> = self.pending.drain(..complete).collect();
            let mut out = Vec::with_capacity(lines.len());
            for line in lines.split_inclusive(|&b| b == b'\n') {
                out.extend(self.renderer.render_line(line));
            }
            if !out.is_empty() {
                return Some(Ok(Bytes::from(out)));
            }
        }
        None
    }

    /// Reads what is there; when following, a file that shrank was truncated (copytruncate
    /// rotation), so it is read anew from its start.
    async fn read_more(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.file.read(buffer).await?;
        if read > 0 {
            self.position += read as u64;
            return Ok(read);
        }
        if self.follow && self.file.metadata().await?.len() < self.position {
            tracing::debug!(container = %self.label, "log file truncated, reading from its start");
            self.position = self.file.seek(SeekFrom::Start(0)).await?;
            self.pending.clear();
        }
        Ok(0)
    }
}

impl Drop for LogReader {
    fn drop(&mut self) {
        tracing::debug!(container = %self.label, follow = self.follow, "log stream closed");
    }
}

// ---------------------------------------------------------------- pure parts

/// The `containerLogs` query parameters, as upstream's kubelet reads them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct LogOptions {
    follow: bool,
    previous: bool,
    timestamps: bool,
    tail_lines: Option<u64>,
    limit_bytes: Option<u64>,
    since: Option<Since>,
    /// `stream=Stdout|Stderr`; `None` (or `All`) is both.
    stream: Option<CriStream>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Since {
    /// `sinceSeconds`: relative to the request time.
    Seconds(u64),
    /// `sinceTime`: an RFC 3339 instant.
    Time(jiff::Timestamp),
}

impl LogOptions {
    fn from_query(query: &HashMap<String, String>) -> Result<Self, LogsError> {
        let flag = |name| query.get(name).map_or(Ok(false), |v| parse_bool(name, v));
        let count = |name| query.get(name).map(|v| parse_count(name, v)).transpose();
        let since = match (count("sinceSeconds")?, query.get("sinceTime")) {
            (Some(_), Some(_)) => {
                return Err(bad_query(
                    "sinceTime",
                    query.get("sinceTime"),
                    "sinceSeconds is set too",
                ));
            }
            (Some(seconds), None) => Some(Since::Seconds(seconds)),
            (None, Some(time)) => {
                Some(Since::Time(time.parse().map_err(|_| {
                    bad_query("sinceTime", Some(time), "not an RFC 3339 time")
                })?))
            }
            (None, None) => None,
        };
        let stream = match query.get("stream").map(String::as_str) {
            None | Some("" | "All") => None,
            Some("Stdout") => Some(CriStream::Stdout),
            Some("Stderr") => Some(CriStream::Stderr),
            Some(other) => {
                return Err(bad_query(
                    "stream",
                    Some(&other.to_owned()),
                    "expected All, Stdout or Stderr",
                ));
            }
        };
        Ok(Self {
            follow: flag("follow")?,
            previous: flag("previous")?,
            timestamps: flag("timestamps")?,
            tail_lines: count("tailLines")?,
            limit_bytes: count("limitBytes")?,
            since,
            stream,
        })
    }
}

fn bad_query(name: &'static str, value: Option<&String>, reason: &'static str) -> LogsError {
    LogsError::BadQuery {
        name,
        value: value.cloned().unwrap_or_default(),
        reason,
    }
}

/// Go's `strconv.ParseBool`, which the API server's query encoding round-trips through.
fn parse_bool(name: &'static str, value: &str) -> Result<bool, LogsError> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(bad_query(name, Some(&value.to_owned()), "not a boolean")),
    }
}

/// A non-negative integer; upstream treats negative counts as invalid too.
fn parse_count(name: &'static str, value: &str) -> Result<u64, LogsError> {
    value
        .parse()
        .map_err(|_| bad_query(name, Some(&value.to_owned()), "not a non-negative integer"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CriStream {
    Stdout,
    Stderr,
}

/// One line of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
struct CriRecord<'a> {
    timestamp: &'a str,
    stream: CriStream,
    /// `P`: the text continues in the next record; `F`: the text ends a line.
    partial: bool,
    text: &'a [u8],
}

/// Parses `<timestamp> <stream> <tag>[:<tag>...] <text>`, the line without its newline.
fn parse_cri_line(line: &[u8]) -> Option<CriRecord<'_>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let timestamp = std::str::from_utf8(fields.next()?).ok()?;
    let stream = match fields.next()? {
        b"stdout" => CriStream::Stdout,
        b"stderr" => CriStream::Stderr,
        _ => return None,
    };
    let partial = match fields.next()?.split(|&b| b == b':').next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    let text = fields.next().unwrap_or_default();
    (!timestamp.is_empty()).then_some(CriRecord {
        timestamp,
        stream,
        partial,
        text,
    })
}

/// Turns CRI lines into what `kubectl logs` shows, applying the filters and `limitBytes`.
#[derive(Debug)]
struct Renderer {
    timestamps: bool,
    since: Option<jiff::Timestamp>,
    stream: Option<CriStream>,
    /// Bytes still allowed by `limitBytes`.
    remaining: Option<u64>,
    /// The previous record of each stream ended its line (so the next one gets a timestamp prefix).
    at_line_start: [bool; 2],
}

impl Renderer {
    fn new(options: &LogOptions, now: jiff::Timestamp) -> Self {
        let since = options.since.map(|since| match since {
            Since::Time(time) => time,
            Since::Seconds(seconds) => {
                let seconds = i64::try_from(seconds).unwrap_or(i64::MAX);
                now.checked_sub(jiff::SignedDuration::from_secs(seconds))
                    .unwrap_or(jiff::Timestamp::MIN)
            }
        });
        Self {
            timestamps: options.timestamps,
            since,
            stream: options.stream,
            remaining: options.limit_bytes,
            at_line_start: [true; 2],
        }
    }

    fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// The output for one file line (with or without its trailing newline). Lines that are not CRI
    /// records are passed through unchanged rather than hidden.
    fn render_line(&mut self, line: &[u8]) -> Vec<u8> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        match parse_cri_line(line) {
            Some(record) => {
                let parsed_time = record.timestamp.parse::<jiff::Timestamp>().ok();
                if self.stream.is_some_and(|s| s != record.stream) {
                    return Vec::new();
                }
                if let (Some(since), Some(time)) = (self.since, parsed_time)
                    && time < since
                {
                    return Vec::new();
                }
                let at_line_start = &mut self.at_line_start[record.stream as usize];
                if self.timestamps && *at_line_start {
                    match parsed_time {
                        Some(time) => out.extend(format!("{time:.9} ").into_bytes()),
                        None => out.extend(format!("{} ", record.timestamp).into_bytes()),
                    }
                }
                out.extend_from_slice(record.text);
                if !record.partial {
                    out.push(b'\n');
                }
                *at_line_start = !record.partial;
            }
            None => {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        self.limit(out)
    }

    fn limit(&mut self, mut out: Vec<u8>) -> Vec<u8> {
        if let Some(remaining) = self.remaining.as_mut() {
            let allowed = usize::try_from(*remaining).unwrap_or(usize::MAX).min(out.len());
            out.truncate(allowed);
            *remaining -= allowed as u64;
        }
        out
    }
}

/// The offset where the last `lines` lines of `file` start (a final line without its newline counts).
fn tail_start<F: Read + Seek>(file: &mut F, lines: u64) -> std::io::Result<u64> {
    let end = file.seek(SeekFrom::End(0))?;
    if lines == 0 {
        return Ok(end);
    }
    let mut block = vec![0u8; 8192];
    let mut block_end = end;
    let mut newlines = 0u64;
    // The newline ending the file terminates the last line; it does not start a new one.
    let mut skip_final_newline = true;
    while block_end > 0 {
        let block_start = block_end.saturating_sub(block.len() as u64);
        let len = usize::try_from(block_end - block_start).unwrap_or(block.len());
        file.seek(SeekFrom::Start(block_start))?;
        file.read_exact(&mut block[..len])?;
        for (i, &byte) in block[..len].iter().enumerate().rev() {
            if byte != b'\n' {
                skip_final_newline = false;
                continue;
            }
            if std::mem::take(&mut skip_final_newline) {
                continue;
            }
            newlines += 1;
            if newlines == lines {
                return Ok(block_start + i as u64 + 1);
            }
        }
        block_end = block_start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn options(pairs: &[(&str, &str)]) -> LogOptions {
        match LogOptions::from_query(&query(pairs)) {
            Ok(o) => o,
            Err(e) => panic!("{pairs:?}: {e}"),
        }
    }

    fn render(pairs: &[(&str, &str)], lines: &[&str]) -> String {
        let now = "2026-01-01T00:01:00Z"
            .parse()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut renderer = Renderer::new(&options(pairs), now);
        let out: Vec<u8> = lines
            .iter()
            .flat_map(|l| renderer.render_line(format!("{l}\n").as_bytes()))
            .collect();
        String::from_utf8_lossy(&out).into_owned()
    }

    fn tail(content: &str, lines: u64) -> String {
        let mut file = Cursor::new(content.as_bytes().to_vec());
        match tail_start(&mut file, lines) {
            Ok(start) => content[usize::try_from(start).unwrap_or(0)..].to_owned(),
            Err(e) => panic!("{e}"),
        }
    }

    const LOG: &[&str] = &[
        "2026-01-01T00:00:00.5Z stdout F first",
        "2026-01-01T00:00:30.123456789Z stderr F second",
        "2026-01-01T00:00:59Z stdout F third",
    ];

    #[test]
    fn cri_line_splits_into_timestamp_stream_tag_and_text() {
        let record = parse_cri_line(b"2026-01-01T00:00:00.123Z stdout F hello world");
        assert_eq!(
            record,
            Some(CriRecord {
                timestamp: "2026-01-01T00:00:00.123Z",
                stream: CriStream::Stdout,
                partial: false,
                text: b"hello world",
            })
        );
    }

    #[test]
    fn cri_partial_tag_and_empty_text_are_understood() {
        let record = parse_cri_line(b"2026-01-01T00:00:00Z stderr P:x ");
        assert_eq!(
            record.map(|r| (r.stream, r.partial, r.text)),
            Some((CriStream::Stderr, true, &b""[..]))
        );
        let bare = parse_cri_line(b"2026-01-01T00:00:00Z stdout F");
        assert_eq!(bare.map(|r| r.text), Some(&b""[..]));
    }

    #[test]
    fn text_keeps_its_own_spaces() {
        let record = parse_cri_line(b"2026-01-01T00:00:00Z stdout F  two  spaces ");
        assert_eq!(record.map(|r| r.text), Some(&b" two  spaces "[..]));
    }

    #[test]
    fn lines_that_are_not_cri_records_are_rejected_by_the_parser() {
        for bad in [&b"hello"[..], b"ts stdin F x", b"ts stdout X x", b" stdout F x"] {
            assert_eq!(parse_cri_line(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn plain_output_is_the_text_only() {
        assert_eq!(render(&[], LOG), "first\nsecond\nthird\n");
    }

    #[test]
    fn timestamps_prefix_each_line_with_nanosecond_precision() {
        assert_eq!(
            render(&[("timestamps", "true")], LOG),
            "2026-01-01T00:00:00.500000000Z first\n\
             2026-01-01T00:00:30.123456789Z second\n\
             2026-01-01T00:00:59.000000000Z third\n"
        );
    }

    #[test]
    fn partial_records_join_into_one_line_with_one_timestamp() {
        let lines = [
            "2026-01-01T00:00:01Z stdout P hel",
            "2026-01-01T00:00:02Z stdout F lo",
        ];
        assert_eq!(render(&[], &lines), "hello\n");
        assert_eq!(
            render(&[("timestamps", "1")], &lines),
            "2026-01-01T00:00:01.000000000Z hello\n"
        );
    }

    #[test]
    fn since_seconds_drops_older_lines() {
        assert_eq!(render(&[("sinceSeconds", "45")], LOG), "second\nthird\n");
        assert_eq!(render(&[("sinceTime", "2026-01-01T00:00:40Z")], LOG), "third\n");
    }

    #[test]
    fn stream_selects_stdout_or_stderr() {
        assert_eq!(render(&[("stream", "Stderr")], LOG), "second\n");
        assert_eq!(render(&[("stream", "Stdout")], LOG), "first\nthird\n");
    }

    #[test]
    fn limit_bytes_cuts_the_output_mid_line() {
        assert_eq!(render(&[("limitBytes", "9")], LOG), "first\nsec");
    }

    #[test]
    fn non_cri_lines_pass_through() {
        assert_eq!(render(&[], &["just text"]), "just text\n");
    }

    #[test]
    fn query_flags_follow_go_parse_bool() {
        let o = options(&[
            ("follow", "true"),
            ("previous", "1"),
            ("timestamps", "False"),
            ("tailLines", "10"),
        ]);
        assert!(o.follow && o.previous && !o.timestamps);
        assert_eq!(o.tail_lines, Some(10));
        assert_eq!(options(&[]), LogOptions::default());
    }

    #[test]
    fn malformed_query_values_are_bad_requests() {
        for bad in [
            &[("follow", "yes")][..],
            &[("tailLines", "-1")],
            &[("limitBytes", "x")],
            &[("sinceTime", "yesterday")],
            &[("sinceSeconds", "5"), ("sinceTime", "2026-01-01T00:00:00Z")],
            &[("stream", "stdin")],
        ] {
            assert!(
                matches!(
                    LogOptions::from_query(&query(bad)),
                    Err(LogsError::BadQuery { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn tail_starts_at_the_last_n_lines() {
        let content = "a\nb\nc\n";
        assert_eq!(tail(content, 1), "c\n");
        assert_eq!(tail(content, 2), "b\nc\n");
        assert_eq!(tail(content, 3), content);
        assert_eq!(tail(content, 10), content);
        assert_eq!(tail(content, 0), "");
    }

    #[test]
    fn tail_counts_an_unterminated_last_line() {
        assert_eq!(tail("a\nb\nc", 1), "c");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }

    #[test]
    fn tail_of_empty_lines_and_empty_file() {
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("\n\n\n", 2), "\n\n");
    }

    #[test]
    fn tail_crosses_read_blocks() {
        let content: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&content, 2), "line 4998\nline 4999\n");
        let last_1000: String = (4000..5000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(&content, 1000), last_1000);
    }

    #[test]
    fn unknown_container_is_a_404_with_upstreams_message() {
        let error = LogsError::UnknownContainer {
            pod: "web-0".into(),
            container: "nope".into(),
        };
        assert_eq!(error.to_string(), "container nope is not valid for pod web-0");
        assert_eq!(error.into_response().status(), StatusCode::NOT_FOUND);
    }
}
