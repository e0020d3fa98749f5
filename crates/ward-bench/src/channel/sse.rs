//! An incremental `text/event-stream` parser, trimmed from `ward-authenticator`'s (which has the
//! full WHATWG treatment and property tests): lines end with LF, CRLF or a lone CR, even split
//! across chunks; `:` lines are comments (keep-alives); a blank line dispatches; `data:` lines
//! join with LF. `id` and `retry` are ignored. Limits bound what a broken server can make us hold.

use std::collections::VecDeque;

/// The longest line accepted, in bytes.
const MAX_LINE: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent.
    pub event: String,
    pub data: String,
}

/// A line or an event went past [`MAX_LINE`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// The parser's state between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was a CR: a LF right after it ends no second line.
    after_cr: bool,
    event: Option<String>,
    data: String,
    ready: VecDeque<SseEvent>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk; completed events become available from [`Self::next_event`].
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), TooLong> {
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
                        return Err(TooLong);
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

    fn end_line(&mut self) -> Result<(), TooLong> {
        let bytes = std::mem::take(&mut self.line);
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
                if self.data.len() + value.len() + 1 > MAX_LINE {
                    return Err(TooLong);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
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
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const STREAM: &str = ": hello\n\nevent: push\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: push\r\ndata: line one\r\ndata: line two\r\n\r\ndata:no-space\n\n";

    fn expected() -> Vec<SseEvent> {
        let event = |event: &str, data: &str| SseEvent {
            event: event.into(),
            data: data.into(),
        };
        vec![
            event("push", "{\"a\":1}"),
            event("push", "line one\nline two"),
            event("message", "no-space"),
        ]
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        assert_eq!(parse_chunks(&[bytes]), expected());
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(parse_chunks(&[a, b]), expected(), "cut at {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_chunks(&singles), expected());
    }

    #[test]
    fn comments_alone_dispatch_nothing_and_unterminated_events_wait() {
        assert!(parse_chunks(&[b":a\n\n:b\n\nevent: push\n\n"]).is_empty());
        assert!(parse_chunks(&[b"event: push\ndata: partial\n"]).is_empty());
    }

    #[test]
    fn oversized_lines_are_an_error() {
        let mut parser = SseParser::new();
        assert_eq!(parser.feed(&vec![b'x'; MAX_LINE + 1]), Err(TooLong));
    }
}
