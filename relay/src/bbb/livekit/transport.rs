//! The websocket and HTTP transport under the `livekit-signaling` client: Tolk's own
//! tokio-tungstenite and reqwest with Tolk's TLS (aws-lc-rs and the system's roots), registered
//! once per process, so the LiveKit crates bring no TLS stack of their own. Binary frames only
//! cross: websocket pings are answered here.

use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use livekit_net::{
    Header, HttpClient, HttpMethod, HttpResponse, TransportError, WsClient, WsConnectResult, WsConnection,
};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Register Tolk's transport with the LiveKit crates (once; later calls do nothing).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        livekit_net::set_ws_client(Arc::new(Transport));
        livekit_net::set_http_client(Arc::new(Transport));
    });
}

struct Transport;

fn tls() -> Result<Arc<rustls::ClientConfig>, TransportError> {
    crate::bbb::tls_config().map_err(|e| TransportError::Other(e.to_string()))
}

#[async_trait::async_trait]
impl WsClient for Transport {
    async fn connect(
        &self,
        url: String,
        headers: Vec<Header>,
        timeout_ms: u64,
    ) -> Result<WsConnectResult, TransportError> {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| TransportError::Connection(format!("bad websocket URL: {e}")))?;
        for header in headers {
            let (Ok(name), Ok(value)) = (
                tungstenite::http::HeaderName::from_bytes(header.name.as_bytes()),
                tungstenite::http::HeaderValue::from_str(&header.value),
            ) else {
                return Err(TransportError::Connection(format!("header {} is not valid", header.name)));
            };
            request.headers_mut().insert(name, value);
        }
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            true,
            Some(Connector::Rustls(tls()?)),
        );
        let (socket, _) = tokio::time::timeout(Duration::from_millis(timeout_ms), connecting)
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(|e| match e {
                tungstenite::Error::Http(response) => {
                    TransportError::Http { status: response.status().as_u16() }
                }
                other => TransportError::Connection(other.to_string()),
            })?;
        let (sink, stream) = socket.split();
        Ok(WsConnectResult {
            connection: Arc::new(Connection { sink: Mutex::new(sink), stream: Mutex::new(stream) }),
        })
    }
}

struct Connection {
    sink: Mutex<SplitSink<Socket, Message>>,
    stream: Mutex<SplitStream<Socket>>,
}

#[async_trait::async_trait]
impl WsConnection for Connection {
    async fn send(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.sink.lock().await.send(Message::binary(frame)).await.map_err(|_| TransportError::Closed)
    }

    async fn recv(&self) -> Result<Option<Vec<u8>>, TransportError> {
        let mut stream = self.stream.lock().await;
        loop {
            match stream.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes.to_vec())),
                Some(Ok(Message::Ping(payload))) => {
                    let _ = self.sink.lock().await.send(Message::Pong(payload)).await;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(TransportError::Connection(e.to_string())),
            }
        }
    }

    async fn close(&self) {
        let _ = self.sink.lock().await.close().await;
    }
}

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn request(
        &self,
        method: HttpMethod,
        url: String,
        headers: Vec<Header>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, TransportError> {
        let client = http_client()?;
        let mut request = match method {
            HttpMethod::Get => client.get(&url),
            HttpMethod::Post => client.post(&url),
        };
        for header in headers {
            request = request.header(header.name, header.value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() { TransportError::Timeout } else { TransportError::Connection(e.to_string()) }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some(Header { name: n.to_string(), value: v.to_str().ok()?.to_owned() }))
            .collect();
        let body = response.bytes().await.map_err(|e| TransportError::Connection(e.to_string()))?.to_vec();
        Ok(HttpResponse { status, headers, body })
    }
}

/// One HTTP client for LiveKit's calls (the room service, connection validation).
pub(crate) fn http_client() -> Result<reqwest::Client, TransportError> {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client =
        crate::bbb::http_client(Duration::from_secs(10)).map_err(|e| TransportError::Other(e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}
