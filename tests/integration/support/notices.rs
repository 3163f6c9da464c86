//! Clients whose NoticeResponses the test reads (warnings and the proxy's
//! own notices).

use std::sync::{Arc, Mutex};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// A client whose notices are collected (message and detail).
pub async fn with_notices(conn: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let (client, mut connection) = tokio_postgres::connect(conn, NoTls).await.unwrap();
    let notices = Arc::new(Mutex::new(Vec::new()));
    let sink = notices.clone();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(message)) = stream.next().await {
            if let AsyncMessage::Notice(n) = message {
                let text = format!("{} | {}", n.message(), n.detail().unwrap_or(""));
                sink.lock().unwrap().push(text);
            }
        }
    });
    (client, notices)
}
