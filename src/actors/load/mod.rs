//! The load unit: creates the target schemas and loads a dump directory in parallel,
//! resumably.
