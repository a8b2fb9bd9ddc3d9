//! The object store backups are written to and restored from: an S3-compatible bucket reached with the
//! `object_store` crate (path-style requests, SigV4, multipart uploads), with credentials read from files
//! (a projected Secret) each time a store is opened, so a rotated key is used by the next backup without a
//! restart. Also the layout of a backup in the bucket and the wording of store errors for a user.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::{MANIFEST_FILE, StoreLocation};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{Certificate, ClientOptions, ObjectStore, RetryConfig};

/// The snapshot's object name inside a backup's directory.
pub const SNAPSHOT_FILE: &str = "dump.rdb";

/// Files of a credentials directory (the keys of the projected Secret).
pub const ACCESS_KEY_ID: &str = "ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY: &str = "SECRET_ACCESS_KEY";
pub const SESSION_TOKEN: &str = "SESSION_TOKEN";
/// PEM bundle of a private CA for an `https://` endpoint.
pub const CA_BUNDLE: &str = "CA_BUNDLE";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("credentials directory {0:?} is not a plain name")]
    CredentialsName(String),
    #[error("cannot read the object store credentials {path}: {error}")]
    Credentials { path: String, error: std::io::Error },
    #[error("object store configuration: {0}")]
    Config(String),
}

/// Static S3 credentials.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// PEM bundle of the CA of a private `https://` endpoint, trusted besides the system's roots.
    pub ca_bundle: Option<String>,
}

/// Opens the bucket of `location` with the credentials in `credentials_root/<location.credentials>/`.
pub fn open(credentials_root: &Path, location: &StoreLocation) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let name = &location.credentials;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(StoreError::CredentialsName(name.clone()));
    }
    let dir = credentials_root.join(name);
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path)
            .map(|text| text.trim().to_string())
            .map_err(|error| StoreError::Credentials {
                path: path.display().to_string(),
                error,
            })
    };
    let credentials = Credentials {
        access_key_id: read(ACCESS_KEY_ID)?,
        secret_access_key: read(SECRET_ACCESS_KEY)?,
        session_token: match dir.join(SESSION_TOKEN).exists() {
            true => Some(read(SESSION_TOKEN)?),
            false => None,
        },
        ca_bundle: match dir.join(CA_BUNDLE).exists() {
            true => Some(read(CA_BUNDLE)?),
            false => None,
        },
    };
    open_with(location, credentials)
}

/// Opens the bucket of `location` with `credentials` (the operator, which reads them from the Secret).
pub fn open_with(
    location: &StoreLocation,
    credentials: Credentials,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let mut options = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120))
        .with_allow_http(true);
    if let Some(pem) = &credentials.ca_bundle {
        let roots = Certificate::from_pem_bundle(pem.as_bytes()).map_err(|error| {
            StoreError::Config(format!("the endpoint CA bundle is not PEM: {}", describe(&error)))
        })?;
        if roots.is_empty() {
            return Err(StoreError::Config(
                "the endpoint CA bundle holds no certificate".to_string(),
            ));
        }
        for root in roots {
            options = options.with_root_certificate(root);
        }
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&location.region)
        .with_access_key_id(credentials.access_key_id)
        .with_secret_access_key(credentials.secret_access_key)
        // A store that does not answer fails the backup in seconds, with its error, not after minutes.
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        })
        .with_client_options(options);
    if let Some(token) = credentials.session_token {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = &location.endpoint_url {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
    }
    let store = builder
        .build()
        .map_err(|error| StoreError::Config(describe(&error)))?;
    Ok(Arc::new(store))
}

/// The location of `s3://bucket/prefix` (a `destinationPath`), read with the credentials directory
/// `credentials`.
pub fn location(
    destination_path: &str,
    endpoint_url: Option<String>,
    region: &str,
    credentials: &str,
) -> Result<StoreLocation, String> {
    let rest = destination_path
        .strip_prefix("s3://")
        .ok_or_else(|| format!("destinationPath {destination_path} is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("destinationPath {destination_path} names no bucket"));
    }
    Ok(StoreLocation {
        bucket: bucket.to_string(),
        prefix: prefix.trim_matches('/').to_string(),
        endpoint_url,
        region: region.to_string(),
        credentials: credentials.to_string(),
    })
}

/// `<prefix>/<cluster>/`: every backup of one cluster.
pub fn cluster_dir(location: &StoreLocation, cluster: &str) -> ObjectPath {
    let prefix = location.prefix.trim_matches('/');
    if prefix.is_empty() {
        ObjectPath::from(cluster)
    } else {
        ObjectPath::from(format!("{prefix}/{cluster}"))
    }
}

/// `<prefix>/<cluster>/<backup>/`: one backup's snapshot and manifest.
pub fn backup_dir(location: &StoreLocation, cluster: &str, backup: &str) -> ObjectPath {
    cluster_dir(location, cluster).join(backup)
}

pub fn manifest_path(location: &StoreLocation, cluster: &str, backup: &str) -> ObjectPath {
    backup_dir(location, cluster, backup).join(MANIFEST_FILE)
}

/// `s3://bucket/key` of an object, as users see it.
pub fn url(location: &StoreLocation, path: &ObjectPath) -> String {
    format!("s3://{}/{}", location.bucket, path)
}

/// A store error in a sentence a user can act on: the S3 error code and message when the server sent
/// one (`SignatureDoesNotMatch`, `NoSuchBucket`, ...), else the transport error, without the XML.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = cause.source();
    }
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => {
            let mut short: String = text.chars().take(400).collect();
            if short.len() < text.len() {
                short.push_str("...");
            }
            short
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(prefix: &str) -> StoreLocation {
        StoreLocation {
            bucket: "backups".to_string(),
            prefix: prefix.to_string(),
            endpoint_url: None,
            region: "us-east-1".to_string(),
            credentials: "backup".to_string(),
        }
    }

    #[test]
    fn a_backup_lives_under_prefix_cluster_and_name() {
        let nested = location("team-a/cnredis/");
        assert_eq!(
            manifest_path(&nested, "orders", "nightly-20261202").to_string(),
            "team-a/cnredis/orders/nightly-20261202/manifest.json"
        );
        assert_eq!(
            url(&nested, &backup_dir(&nested, "orders", "b1")),
            "s3://backups/team-a/cnredis/orders/b1"
        );
        assert_eq!(cluster_dir(&location(""), "orders").to_string(), "orders");
    }

    #[derive(Debug)]
    struct Text(&'static str);
    impl std::fmt::Display for Text {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Text {}

    #[test]
    fn store_errors_are_told_by_their_s3_code() {
        let xml = Text(
            "Error performing list request: Client error with status 403 Forbidden: <?xml version=\"1.0\"?>\
             <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does \
             not match the signature you provided.</Message></Error>",
        );
        assert_eq!(
            describe(&xml),
            "SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided."
        );
        let transport = Text("error sending request: connection refused");
        assert_eq!(describe(&transport), "error sending request: connection refused");
    }

    #[test]
    fn credentials_are_read_from_a_plain_directory_name_only() {
        let root = std::env::temp_dir();
        let mut escaping = location("");
        escaping.credentials = "../etc".to_string();
        assert!(matches!(
            open(&root, &escaping),
            Err(StoreError::CredentialsName(_))
        ));
        let mut missing = location("");
        missing.credentials = "no-such-credentials-dir".to_string();
        let error = open(&root, &missing)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("no-such-credentials-dir/ACCESS_KEY_ID"), "{error}");
    }
}
