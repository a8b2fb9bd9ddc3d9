//! Parsing of the server's `INFO` output (placeholder, being written).
