//! Transfer throughput benchmark.

fn main() {}
