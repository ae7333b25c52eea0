//! Just enough RESP to PING, authenticate and SHUTDOWN a node without a client library: the
//! process manager must work even when the cluster itself is broken.

use crate::error::{LocalError, Result};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One reply, flattened to what the process manager needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`, a bulk string or an integer, as text.
    Text(String),
    /// `$-1`.
    Nil,
    /// The server closed the connection without replying (what a successful SHUTDOWN does).
    Closed,
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Run `AUTH password` (when given) then `args` on `addr`, returning the last reply.
/// An error reply (`-ERR …`) becomes `LocalError::Redis`.
pub async fn command(addr: &str, password: Option<&str>, args: &[&str]) -> Result<Reply> {
    let fail = |reason: String| LocalError::Redis {
        addr: addr.to_owned(),
        reason,
    };
    let work = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut stream = BufReader::new(stream);
        if let Some(pw) = password {
            send(&mut stream, &["AUTH", pw])
                .await
                .map_err(|e| fail(e.to_string()))?;
            read_reply(&mut stream)
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(fail)?;
        }
        send(&mut stream, args)
            .await
            .map_err(|e| fail(e.to_string()))?;
        read_reply(&mut stream)
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(fail)
    };
    tokio::time::timeout(IO_TIMEOUT, work)
        .await
        .map_err(|_| fail(format!("no reply within {} s", IO_TIMEOUT.as_secs())))?
}

async fn send(stream: &mut BufReader<TcpStream>, args: &[&str]) -> std::io::Result<()> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a.as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
    stream.get_mut().write_all(&buf).await
}

/// Outer error: the connection broke. Inner error: Redis answered with an error.
async fn read_reply(stream: &mut BufReader<TcpStream>) -> std::io::Result<Result<Reply, String>> {
    let mut line = String::new();
    let n = stream.read_line(&mut line).await?;
    if n == 0 {
        return Ok(Ok(Reply::Closed));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    Ok(match kind {
        "+" | ":" => Ok(Reply::Text(rest.to_owned())),
        "-" => Err(rest.to_owned()),
        "$" => match rest.parse::<i64>() {
            Ok(len) if len < 0 => Ok(Reply::Nil),
            Ok(len) => {
                let len = usize::try_from(len).unwrap_or(0);
                let mut data = vec![0; len + 2];
                stream.read_exact(&mut data).await?;
                data.truncate(len);
                Ok(Reply::Text(String::from_utf8_lossy(&data).into_owned()))
            }
            Err(_) => Err(format!("malformed bulk length {rest:?}")),
        },
        _ => Err(format!("unsupported reply {line:?}")),
    })
}
