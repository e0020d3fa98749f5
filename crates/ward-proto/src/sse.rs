//! A small incremental parser for `text/event-stream` (the WHATWG server-sent events format).
//!
//! Bytes go in as they arrive, in chunks of any size; complete events come out. Lines end with
//! LF, CRLF or a lone CR, even when a chunk boundary falls between the CR and the LF. Lines
//! starting with `:` are comments (keep-alives); a blank line dispatches the event; `data:` lines
//! accumulate, joined with LF. Limits keep a misbehaving server from growing memory without end.

use std::collections::VecDeque;

/// The longest line accepted, in bytes.
const MAX_LINE: usize = 1 << 20;
/// The largest `data` of one event, in bytes.
const MAX_DATA: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    pub data: String,
    /// The last `id:` seen on the stream.
    pub id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("event stream line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("event stream event larger than {MAX_DATA} bytes")]
    EventTooLarge,
}

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was a CR: a LF right after it ends no second line.
    after_cr: bool,
    /// Past the first line (only there may a byte order mark appear).
    started: bool,
    event: Option<String>,
    data: String,
    id: Option<String>,
    ready: VecDeque<SseEvent>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk; completed events become available from [`Self::next_event`].
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), SseError> {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' => self.end_line()?,
                b'\r' => {
                    self.end_line()?;
                    self.after_cr = true;
                }
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(())
    }

    /// The next completed event, oldest first.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn end_line(&mut self) -> Result<(), SseError> {
        let mut bytes = std::mem::take(&mut self.line);
        if !std::mem::replace(&mut self.started, true) && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_DATA {
                    return Err(SseError::EventTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // `retry` and unknown fields: the reconnection policy is ours, not the server's.
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        let event = self.event.take();
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        self.ready.push_back(SseEvent {
            event: event.unwrap_or_else(|| "message".to_owned()),
            data,
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use proptest::prelude::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk).unwrap();
            while let Some(event) = parser.next_event() {
                out.push(event);
            }
        }
        out
    }

    fn push(data: &str) -> SseEvent {
        SseEvent {
            event: "push".into(),
            data: data.into(),
            id: None,
        }
    }

    const STREAM: &str = ": hello\n\nevent: push\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: push\r\ndata: line one\r\ndata: line two\r\n\r\ndata:no-space\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            push("{\"a\":1}"),
            push("line one\nline two"),
            SseEvent {
                event: "message".into(),
                data: "no-space".into(),
                id: None,
            },
        ]
    }

    #[test]
    fn whole_stream_with_comments_crlf_and_multiline_data() {
        assert_eq!(parse_chunks(&[STREAM.as_bytes()]), expected());
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(parse_chunks(&[a, b]), expected(), "cut at {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_chunks(&singles), expected());
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        let events = parse_chunks(&[b"event: push\r", b"\ndata: x\r", b"\n\r", b"\n"]);
        assert_eq!(events, vec![push("x")]);
    }

    #[test]
    fn lone_cr_ends_lines_too() {
        assert_eq!(
            parse_chunks(&[b"event: push\rdata: y\r\r"]),
            vec![push("y")]
        );
    }

    #[test]
    fn comments_alone_dispatch_nothing_and_event_type_resets() {
        assert!(parse_chunks(&[b":a\n\n:b\n\nevent: push\n\n"]).is_empty());
        let events = parse_chunks(&[b"event: push\n\ndata: z\n\n"]);
        assert_eq!(events[0].event, "message", "a blank line resets the type");
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        assert!(parse_chunks(&[b"event: push\ndata: partial\n"]).is_empty());
    }

    #[test]
    fn fields_without_colon_and_empty_data() {
        let events = parse_chunks(&[b"data\n\ndata:\ndata:\n\n"]);
        assert_eq!(events[0].data, "");
        assert_eq!(events[1].data, "\n");
    }

    #[test]
    fn bom_is_skipped_only_at_the_start_and_id_is_kept() {
        let events = parse_chunks(&[b"\xEF\xBB\xBFid: 7\ndata: a\n\n"]);
        assert_eq!(events[0].id.as_deref(), Some("7"));
        assert_eq!(events[0].data, "a");
    }

    #[test]
    fn oversized_input_is_an_error() {
        let mut parser = SseParser::new();
        assert_eq!(
            parser.feed(&vec![b'x'; MAX_LINE + 1]),
            Err(SseError::LineTooLong)
        );
        let mut parser = SseParser::new();
        let line = format!("data: {}\n", "y".repeat(MAX_LINE / 2));
        parser.feed(line.as_bytes()).unwrap();
        assert_eq!(parser.feed(line.as_bytes()), Err(SseError::EventTooLarge));
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_events(
            events in proptest::collection::vec(("[a-z]{0,6}", "[ -~]{0,20}"), 0..6),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            for (kind, data) in &events {
                write!(text, ":ka{eol}event: {kind}{eol}data: {data}{eol}{eol}").unwrap();
            }
            let bytes = text.as_bytes();
            let whole = parse_chunks(&[bytes]);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for p in points {
                chunks.push(&bytes[start..p]);
                start = p;
            }
            chunks.push(&bytes[start..]);
            prop_assert_eq!(parse_chunks(&chunks), whole.clone());
            prop_assert_eq!(whole.len(), events.len());
        }
    }
}
