//! The bench's gRPC connections: unary etcd KV calls written straight onto an HTTP/2 connection.
//!
//! The load generator runs on the cores the measured servers run on, so what it spends per
//! request is taken from the targets. A tonic client puts a lot between a call and the wire: the
//! `Channel`'s buffer task, then hyper's client, which hands each request to the connection's
//! task through a queue and spawns one more task per request to stream its body. Here a call
//! encodes its message into one buffer, opens a stream on the `h2` connection, sends the buffer
//! as the stream's only data frame, and reads the answer and its trailers on the caller's own
//! task. On the wire it is the same gRPC any client sends — `POST /etcdserverpb.KV/<Method>`,
//! `content-type: application/grpc`, `te: trailers`, length-prefixed protobuf — so every target
//! is driven by the same requests. A call unanswered within the connection's timeout fails with
//! `DEADLINE_EXCEEDED`; a connection that breaks fails its calls, which the cell counts.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use conclave_etcd::coalesce::Coalesced;
use conclave_etcd::pb::etcdserverpb::{
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use prost::Message;
use std::time::Duration;
use tonic::{Code, Status};

/// The largest answer a call accepts.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// HTTP/2 flow-control windows: large enough that a cell's answers never wait for a window
/// update.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// One HTTP/2 connection to a member, cloned by every client that shares it.
#[derive(Clone, Debug)]
pub struct Connection {
    send: h2::client::SendRequest<Bytes>,
    /// The request URIs of the three calls, built once.
    put: Uri,
    range: Uri,
    txn: Uri,
    /// A call unanswered after this long fails with `DEADLINE_EXCEEDED`.
    timeout: Duration,
}

impl Connection {
    /// Connects to `endpoint` (`host:port`) within `patience`, with TCP_NODELAY, and runs the
    /// connection on the current runtime.
    pub async fn open(
        endpoint: &str,
        patience: Duration,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let uri = |method: &str| -> std::io::Result<Uri> {
            format!("http://{endpoint}/etcdserverpb.KV/{method}").parse().map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("bad endpoint {endpoint:?}: {e}"),
                )
            })
        };
        let (put, range, txn) = (uri("Put")?, uri("Range")?, uri("Txn")?);
        let stream = tokio::time::timeout(patience, tokio::net::TcpStream::connect(endpoint))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(Coalesced::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            // A connection that fails ends here; the calls on it fail with it and are counted.
            let _ = connection.await;
        });
        Ok(Self { send, put, range, txn, timeout })
    }

    pub async fn put(&self, request: &PutRequest) -> Result<PutResponse, Status> {
        self.unary(&self.put, request).await
    }

    pub async fn range(&self, request: &RangeRequest) -> Result<RangeResponse, Status> {
        self.unary(&self.range, request).await
    }

    pub async fn txn(&self, request: &TxnRequest) -> Result<TxnResponse, Status> {
        self.unary(&self.txn, request).await
    }

    /// One unary call of `uri`, bounded by the connection's timeout.
    async fn unary<Q: Message, A: Message + Default>(
        &self,
        uri: &Uri,
        request: &Q,
    ) -> Result<A, Status> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.call(uri, request)).await {
            Ok(answered) => answered,
            Err(_) => Err(Status::deadline_exceeded(format!("no answer within {timeout:?}"))),
        }
    }

    async fn call<Q: Message, A: Message + Default>(
        &self,
        uri: &Uri,
        request: &Q,
    ) -> Result<A, Status> {
        let len = request.encoded_len();
        let mut body = BytesMut::with_capacity(5 + len);
        body.put_u8(0);
        body.put_u32(len as u32);
        request.encode(&mut body).map_err(|e| Status::internal(format!("encoding: {e}")))?;

        let mut head = Request::new(());
        *head.method_mut() = Method::POST;
        *head.uri_mut() = uri.clone();
        let headers = head.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));

        let mut send = self.send.clone().ready().await.map_err(transport)?;
        let (answer, mut stream) = send.send_request(head, false).map_err(transport)?;
        stream.send_data(body.freeze(), true).map_err(transport)?;
        let answer = answer.await.map_err(transport)?;
        let (parts, mut body) = answer.into_parts();
        if parts.status != StatusCode::OK {
            return Err(Status::unknown(format!("HTTP status {}", parts.status)));
        }
        // A failed call may answer with its status in the headers and no body.
        if let Some(status) = Status::from_header_map(&parts.headers)
            && status.code() != Code::Ok
        {
            return Err(status);
        }
        let mut message = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(transport)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if message.len() + chunk.len() > MAX_ANSWER_BYTES + 5 {
                return Err(Status::resource_exhausted("answer larger than 16 MiB"));
            }
            message.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(transport)?.unwrap_or_default();
        match Status::from_header_map(&trailers) {
            Some(status) if status.code() != Code::Ok => return Err(status),
            Some(_) => {}
            None if parts.headers.contains_key("grpc-status") => {}
            None => return Err(Status::internal("answer without grpc-status")),
        }
        decode(message.freeze())
    }
}

/// The one length-prefixed, uncompressed message of a unary answer.
fn decode<A: Message + Default>(mut frame: Bytes) -> Result<A, Status> {
    if frame.len() < 5 {
        return Err(Status::internal(format!("answer of {} bytes, no message", frame.len())));
    }
    let compressed = frame.get_u8();
    let len = frame.get_u32() as usize;
    if compressed != 0 {
        return Err(Status::internal("compressed answer, but no compression was asked for"));
    }
    if len != frame.len() {
        return Err(Status::internal(format!(
            "answer frames a {len}-byte message in {} bytes",
            frame.len()
        )));
    }
    A::decode(frame).map_err(|e| Status::internal(format!("decoding the answer: {e}")))
}

/// A broken stream or connection, as gRPC clients report it.
fn transport(error: h2::Error) -> Status {
    match error.reason() {
        Some(reason) => Status::unavailable(format!("stream reset: {reason}")),
        None => Status::unavailable(format!("connection: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(message: &PutResponse) -> Bytes {
        let mut frame = BytesMut::new();
        frame.put_u8(0);
        frame.put_u32(message.encoded_len() as u32);
        message.encode(&mut frame).unwrap();
        frame.freeze()
    }

    #[test]
    fn decodes_a_framed_answer() {
        let answer = PutResponse {
            header: Some(conclave_etcd::pb::etcdserverpb::ResponseHeader {
                revision: 7,
                ..Default::default()
            }),
            prev_kv: None,
        };
        assert_eq!(decode::<PutResponse>(framed(&answer)).unwrap(), answer);
    }

    #[test]
    fn refuses_short_compressed_and_misframed_answers() {
        assert_eq!(
            decode::<PutResponse>(Bytes::from_static(&[0, 0])).unwrap_err().code(),
            Code::Internal
        );
        assert_eq!(
            decode::<PutResponse>(Bytes::from_static(&[1, 0, 0, 0, 0])).unwrap_err().code(),
            Code::Internal
        );
        let err = decode::<PutResponse>(Bytes::from_static(&[0, 0, 0, 0, 9, 1])).unwrap_err();
        assert!(err.message().contains("9-byte message in 1 bytes"), "{}", err.message());
    }
}
