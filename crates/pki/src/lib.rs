//! Certificates of the instance API (placeholder, being written).
