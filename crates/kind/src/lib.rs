//! Typed wrappers for `kind` and the container engine it runs on (argv as data).
