//! A one-word HTTP endpoint, as an application's readiness endpoint looks to turnout
//! (`cutover.command.ready_url`): every `GET` is answered 200 with the word `word()` gives now.

/// Serves `word` on a free loopback port until the runtime ends; returns `http://127.0.0.1:PORT`.
pub async fn serve_word<F>(word: F) -> std::io::Result<String>
where
    F: Fn() -> &'static str + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let word = std::sync::Arc::new(word);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let word = std::sync::Arc::clone(&word);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = word();
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    Ok(format!("http://127.0.0.1:{port}"))
}
