//! `cargo xtask`: the workspace's command line (migrations, environments, end-to-end suites).

fn main() {}
