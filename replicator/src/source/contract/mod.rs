//! The contracts a source family implements for the commands around the pipeline — `turnout check`'s
//! report, `verify`'s comparison and `verify --live`'s backend, the cutover's procedure, the read
//! canary's view of green — kept here,
//! below those commands, so a family depends on nothing above it.

pub mod canary;
pub mod compare;
pub mod inventory;
pub mod marker;
pub mod procedure;
pub mod report;
