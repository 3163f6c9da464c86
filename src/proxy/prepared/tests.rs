//! Unit tests of the session hooks.
