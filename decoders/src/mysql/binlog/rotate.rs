//! ROTATE_EVENT (0x04; MySQL internals "ROTATE_EVENT"): the binlog continues in another file. Written at the
//! end of a file (FLUSH BINARY LOGS, size limit) and sent first by a binlog dump as a *fake* rotate
//! (timestamp 0, log_pos 0, `LOG_EVENT_ARTIFICIAL_F`) naming the file the dump starts in.
//!
//! A fake rotate precedes the dump's format description, so the reader cannot know yet whether events carry
//! checksums; when they do, its "file name" ends in the four checksum bytes. [`super::parse_event`] strips
//! them when they are the CRC32 of the event, which a real file name's last four bytes essentially never are.

use super::reader::Reader;
use super::BinlogError;

/// position u64 (post-header), file name (rest of the body, no terminator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotate {
    /// Where to start reading in the next file (4 = just after the magic).
    pub position: u64,
    pub file_name: String,
}

impl Rotate {
    pub(crate) fn parse(r: &mut Reader<'_>, post_header_len: usize) -> Result<Self, BinlogError> {
        let mut post = r.sub(post_header_len, "rotate post-header")?;
        let position = if post_header_len >= 8 { post.u64("position")? } else { 4 };
        let name_len = r.remaining();
        let file_name = r.utf8(name_len, "file name")?;
        Ok(Rotate { position, file_name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_and_file_name_are_read() {
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend_from_slice(b"mysql-bin.000002");
        let r = Rotate::parse(&mut Reader::new(&body, 19, 4), 8).ok();
        assert_eq!(r, Some(Rotate { position: 4, file_name: "mysql-bin.000002".into() }));
    }

    #[test]
    fn a_rotate_shorter_than_its_position_is_an_error() {
        assert!(Rotate::parse(&mut Reader::new(&[4, 0, 0], 19, 4), 8).is_err());
    }
}
