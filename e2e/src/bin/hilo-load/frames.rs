//! A lean reader of the frames a WebSocket server sends, for the delivery benchmarks' sockets
//! once they have joined: the load tool shares the cores of the machine it measures, and a
//! full client (tokio-tungstenite: a timer, a buffer split and a refcount per frame) cost about
//! as much CPU per delivery as the server it measured. It reads unfragmented frames (what
//! Hilo and the bare server send) and answers pings, as any client must.

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::client::Ws;

/// What [`Reader::next`] found.
pub enum Frame<'a> {
    Text(&'a [u8]),
    /// A close frame, or the connection ended.
    Closed,
}

pub struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// A frame at the start of a buffer: its opcode and where its payload lies.
struct Parsed {
    opcode: u8,
    payload: std::ops::Range<usize>,
}

impl Reader {
    /// Takes over a socket whose handshake and join are done (nothing is left unread in the
    /// client's buffer: the server sends nothing after JOINED_THREAD until the posts start).
    pub fn new(ws: Ws) -> Self {
        Self {
            stream: ws.into_inner(),
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
        }
    }

    /// The next text frame, or [`Frame::Closed`].
    pub async fn next(&mut self) -> Frame<'_> {
        loop {
            if let Some(frame) = parse(&self.buf[self.start..self.end]) {
                let payload = self.start + frame.payload.start..self.start + frame.payload.end;
                self.start = payload.end;
                match frame.opcode {
                    0x1 => return Frame::Text(&self.buf[payload]),
                    0x8 => return Frame::Closed,
                    0x9 if self.pong(payload).await.is_err() => return Frame::Closed,
                    _ => {}
                }
                continue;
            }
            // Keep the partial frame at the front, with room to read the rest.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.stream.read(&mut self.buf[self.end..]).await {
                Ok(0) | Err(_) => return Frame::Closed,
                Ok(n) => self.end += n,
            }
        }
    }

    /// Answers a ping with its payload, masked with a zero key (clients must mask).
    async fn pong(&mut self, payload: std::ops::Range<usize>) -> std::io::Result<()> {
        let len = payload.len().min(125);
        let mut frame = vec![0x8A, 0x80 | len as u8, 0, 0, 0, 0];
        frame.extend_from_slice(&self.buf[payload.start..payload.start + len]);
        self.stream.write_all(&frame).await
    }
}

/// The complete frame at the start of `buf`, if there is one.
fn parse(buf: &[u8]) -> Option<Parsed> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    let (len, mut header) = match second & 0x7F {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        short => (short as usize, 2),
    };
    if second & 0x80 != 0 {
        header += 4; // A masked frame (servers do not mask; skip the key if one does).
    }
    (buf.len() >= header + len).then(|| Parsed {
        opcode: first & 0x0F,
        payload: header..header + len,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn frames_are_found_whole_or_not_at_all() {
        let mut text = vec![0x81, 3];
        text.extend_from_slice(b"abc");
        let frame = parse(&text).unwrap();
        assert_eq!((frame.opcode, frame.payload), (1, 2..5));
        assert!(parse(&text[..4]).is_none());

        let mut long = vec![0x81, 126, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(parse(&long).unwrap().payload, 4..260);
        assert!(parse(&long[..100]).is_none());
    }
}
