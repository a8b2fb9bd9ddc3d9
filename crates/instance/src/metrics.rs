//! Instance metrics on port 9121 (placeholder, being written).
