//! Byte-position matching of the two ends of a connection.
//!
//! Each direction of a connection is a byte stream. What one side sends is appended at the
//! stream's send position, tagged with the request and span that sent it; what the other side
//! reads is taken from its receive position. The cumulative byte counts line up, so on a
//! keep-alive or pipelined connection each message goes to the request that sent it, where a
//! 4-tuple alone would confuse them.

use std::collections::VecDeque;

/// The request and span that sent some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// Request id.
    pub request: u64,
    /// Span id.
    pub span: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    len: i64,
    tag: Option<Tag>,
    tid: i32,
    /// When the syscall that sent the first of these bytes started.
    sent: i64,
    /// Requests whose bytes the same write also carried, after `tag`'s (a server that read
    /// several pipelined requests answers them in one write, in order, and the sizes of
    /// the answers are not in the trace).
    also: Vec<Tag>,
}

/// What a read took from a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Taken {
    /// Tag of the first tagged byte read, if any.
    pub tag: Option<Tag>,
    /// Thread that sent the first byte read, if the sender was traced.
    pub sender: Option<i32>,
    /// When the syscall that sent the first byte read started, if the sender was traced.
    pub sent: Option<i64>,
    /// The read also took bytes of a second, different tag (coalesced messages).
    pub mixed: bool,
    /// The other tags the read took, in stream order, each once (an event loop's read of a
    /// pipelined connection takes several requests' replies at once).
    pub rest: Vec<Tag>,
    /// Bytes read that were never seen sent (sent before the recording or not traced).
    pub unseen: i64,
}

/// One direction of a connection.
#[derive(Debug, Default, Clone)]
pub struct Stream {
    segments: VecDeque<Segment>,
    /// Bytes read before they were seen sent; later sends pay this off first.
    deficit: i64,
    /// When the last read that added to the deficit ended: a send that starts after it
    /// cannot have supplied those bytes (they were sent before the recording began, or their
    /// send was lost), so it does not pay the deficit, which is then written off.
    deficit_at: i64,
}

/// At most this many unread segments are kept per direction: a peer that is not traced never
/// reads, and memory must stay bounded. Older segments are dropped (and counted).
pub const MAX_SEGMENTS: usize = 4096;

impl Stream {
    /// Appends `len` bytes sent by `tid` for `tag` in a syscall that started at `started`.
    /// Returns the number of segments dropped to stay within [`MAX_SEGMENTS`].
    pub fn send(&mut self, len: i64, tag: Option<Tag>, tid: i32, started: i64) -> usize {
        let mut len = len;
        if self.deficit > 0 && started > self.deficit_at {
            // Without this, one unseen message would shift every later message on the
            // connection onto the request before it.
            self.deficit = 0;
        }
        if self.deficit > 0 {
            let paid = self.deficit.min(len);
            self.deficit -= paid;
            len -= paid;
        }
        if len <= 0 {
            return 0;
        }
        if let Some(last) = self.segments.back_mut() {
            if last.tag == tag && last.tid == tid && last.also.is_empty() {
                last.len += len;
                return 0;
            }
        }
        self.segments.push_back(Segment {
            len,
            tag,
            tid,
            sent: started,
            also: Vec::new(),
        });
        let mut dropped = 0;
        while self.segments.len() > MAX_SEGMENTS {
            self.segments.pop_front();
            dropped += 1;
        }
        dropped
    }

    /// The last bytes sent also carried the answers of `tags`, in this order.
    pub fn also(&mut self, tags: Vec<Tag>) {
        if let Some(last) = self.segments.back_mut() {
            last.also.extend(tags);
        }
    }

    /// Takes `len` bytes from the read position, in a read that ended at `at`.
    pub fn recv(&mut self, len: i64, at: i64) -> Taken {
        let mut out = Taken::default();
        let mut left = len;
        let mut first = true;
        while left > 0 {
            let Some(seg) = self.segments.front_mut() else {
                break;
            };
            if first {
                out.tag = seg.tag;
                out.sender = Some(seg.tid);
                out.sent = Some(seg.sent);
                first = false;
            } else if seg.tag.is_some() && seg.tag != out.tag {
                if out.tag.is_none() {
                    out.tag = seg.tag;
                } else {
                    out.mixed = true;
                    if let Some(t) = seg.tag.filter(|t| !out.rest.contains(t)) {
                        out.rest.push(t);
                    }
                }
            }
            for t in &seg.also {
                if out.tag != Some(*t) && !out.rest.contains(t) {
                    out.rest.push(*t);
                    out.mixed = true;
                }
            }
            seg.also.clear();
            let n = seg.len.min(left);
            seg.len -= n;
            left -= n;
            if seg.len == 0 {
                self.segments.pop_front();
            }
        }
        if left > 0 {
            out.unseen = left;
            self.deficit += left;
            self.deficit_at = at;
        }
        out
    }

    /// True when nothing is buffered or owed.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.deficit == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(r: u64) -> Tag {
        Tag {
            request: r,
            span: r * 10,
        }
    }

    fn t(r: u64) -> Option<Tag> {
        Some(tag(r))
    }

    #[test]
    fn keep_alive_messages_go_to_their_own_request() {
        let mut s = Stream::default();
        s.send(100, t(1), 7, 1);
        s.send(80, t(2), 7, 2);
        assert_eq!(s.recv(100, 3).tag, t(1));
        let second = s.recv(80, 4);
        assert_eq!(
            (second.tag, second.sender, second.mixed),
            (t(2), Some(7), false)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn pipelined_messages_split_across_reads() {
        let mut s = Stream::default();
        s.send(100, t(1), 7, 1);
        s.send(100, t(2), 7, 2);
        assert_eq!(s.recv(60, 3).tag, t(1));
        let r = s.recv(90, 4);
        assert_eq!(r.tag, t(1));
        assert!(
            r.mixed,
            "the read took the end of request 1 and the start of request 2"
        );
        assert_eq!(r.rest, vec![tag(2)]);
        assert_eq!(s.recv(50, 5).tag, t(2));
    }

    #[test]
    fn bytes_read_before_they_are_seen_sent_keep_positions_aligned() {
        let mut s = Stream::default();
        let early = s.recv(40, 20);
        assert_eq!((early.tag, early.unseen), (None, 40));
        s.send(40, t(1), 3, 10); // the send of those same bytes, started before the read
        s.send(10, t(2), 3, 30);
        assert_eq!(s.recv(10, 40).tag, t(2));
        assert!(s.is_empty());
    }

    #[test]
    fn bytes_no_later_send_could_have_supplied_do_not_shift_the_stream() {
        // The first read takes bytes sent before the recording began (or whose send was
        // lost); the next message, sent after that read, is its own.
        let mut s = Stream::default();
        assert_eq!(s.recv(40, 20).unseen, 40);
        s.send(110, t(1), 3, 30);
        let next = s.recv(110, 40);
        assert_eq!((next.tag, next.unseen), (t(1), 0));
        s.send(110, t(2), 3, 50);
        assert_eq!(s.recv(110, 60).tag, t(2));
        assert!(s.is_empty());
    }

    #[test]
    fn one_write_answering_pipelined_requests_names_them_all() {
        // redis read three pipelined commands in one read and wrote the three replies in
        // one write (eventloop capture): the reader of that write gets all three, in order.
        let mut s = Stream::default();
        s.send(19, t(1), 7, 1);
        s.also(vec![tag(2), tag(3)]);
        let r = s.recv(19, 2);
        assert_eq!((r.tag, r.rest), (t(1), vec![tag(2), tag(3)]));
        s.send(5, t(4), 7, 3);
        assert_eq!(s.recv(5, 4).rest, vec![], "the next write is its own");
    }

    #[test]
    fn memory_is_bounded_when_nobody_reads() {
        let mut s = Stream::default();
        let mut dropped = 0;
        for i in 0..(MAX_SEGMENTS as u64 + 10) {
            dropped += s.send(1, t(i), 1, i as i64);
        }
        assert_eq!(dropped, 10);
    }
}
