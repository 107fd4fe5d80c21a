//! One test binary for this crate (the decoders' tests on bytes captured from real servers and on byte-built streams): each module is one file beside this one.

mod fixtures;
mod mysql97_fixtures;
mod mysql_decoder;
mod mysql_fixtures;
