//! Placeholder replaced in the bench step.
fn main() {}
