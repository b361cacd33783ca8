//! Dump unit tests (filled in by the dump work).
