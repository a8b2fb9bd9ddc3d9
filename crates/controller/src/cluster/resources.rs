//! Desired objects of a RedisCluster (placeholder, being written).
