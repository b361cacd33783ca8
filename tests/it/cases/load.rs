//! Load unit tests (filled in by the load work).
