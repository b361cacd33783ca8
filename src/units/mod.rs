//! The units a subtask runs before (or instead of) the sync unit: [`dump`] (a consistent,
//! parallel logical dump in dumpling's layout) and [`load`] (a resumable, parallel load of
//! such a dump). Plain async code, no actors: the subtask's `UnitsActor` drives them and owns
//! their lifecycle (stop, restart from their persisted state).

pub mod dump;
pub mod load;
