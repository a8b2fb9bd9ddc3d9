//! The instance API's wire format and client (placeholder, being written).
