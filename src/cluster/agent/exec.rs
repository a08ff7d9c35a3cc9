//! The agent's end of an exec session (the shell in the web UI): the
//! server relays an `exec` request ([`crate::cluster::protocol::AgentRequest`]),
//! the agent opens a websocket back to `/v1/agent/exec/<id>` with its own
//! credentials (so hosts behind NAT work, as for every other call), runs
//! `docker exec` with a TTY in the container, and pipes bytes both ways.
//!
//! Frames on the websocket: binary frames are terminal bytes (keys in,
//! output out); a text frame from the browser is a control message,
//! `{"resize": [cols, rows]}`; a text frame to the browser is an error the
//! page shows.
//!
//! The exec is started over a raw hijacked connection to the engine
//! socket rather than bollard's `start_exec`, whose decoder waits for a
//! newline on a TTY stream (a shell prompt would never show).

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::docker;
use crate::cluster::client::{Client, WebSocket};
use crate::cluster::protocol::AgentRequest;

/// The shell when the request names no command: bash when the image has
/// one, else sh (Rancher did the same).
const DEFAULT_SHELL: &str = "if [ -x /bin/bash ]; then exec /bin/bash; else exec /bin/sh; fi";

/// Carry out one exec request: connect back, run, pipe, close.
pub(crate) async fn run(
    docker: bollard::Docker,
    socket: String,
    client: Client,
    host: String,
    req: AgentRequest,
) {
    let path = format!("/v1/agent/exec/{}", req.request_id);
    let mut ws = match client.websocket(&path).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::warn!(error = %e, instance = %req.instance_id, "exec: cannot connect back to the server");
            return;
        }
    };
    if let Err(e) = session(&docker, &socket, &host, &req, &mut ws).await {
        tracing::info!(error = %e, instance = %req.instance_id, "exec ended with an error");
        let _ = ws.send(Message::Text(format!("exec: {e}").into())).await;
    }
    let _ = ws.close(None).await;
}

async fn session(
    docker: &bollard::Docker,
    socket: &str,
    host: &str,
    req: &AgentRequest,
    ws: &mut WebSocket,
) -> Result<(), String> {
    let managed = docker::managed(docker, host)
        .await
        .map_err(|e| e.to_string())?;
    let Some(actual) = managed.get(&req.instance_id) else {
        return Err(format!(
            "container {} has no docker container on this host",
            req.instance_id
        ));
    };
    let cmd: Vec<String> = if req.command.is_empty() {
        vec!["/bin/sh".into(), "-c".into(), DEFAULT_SHELL.into()]
    } else {
        req.command.clone()
    };
    let created = docker
        .create_exec(
            &actual.id,
            bollard::exec::CreateExecOptions::<String> {
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(true),
                env: Some(vec!["TERM=xterm-256color".into()]),
                cmd: Some(cmd),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut tty = start_raw(socket, &created.id).await?;
    tracing::info!(instance = %req.instance_id, exec = %created.id, "exec started");
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = tty.read(&mut buf) => match n {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    ws.send(Message::Binary(buf[..n].to_vec().into()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
            },
            m = ws.next() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(Message::Binary(b))) => {
                    tty.write_all(&b).await.map_err(|e| e.to_string())?;
                }
                Some(Ok(Message::Text(t))) => {
                    if let Some((cols, rows)) = resize_of(&t) {
                        let _ = docker
                            .resize_exec(
                                &created.id,
                                bollard::exec::ResizeExecOptions { width: cols, height: rows },
                            )
                            .await;
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

/// `{"resize": [cols, rows]}` → `(cols, rows)`.
fn resize_of(text: &str) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let a = v.get("resize")?.as_array()?;
    let n = |i: usize| {
        a.get(i)?
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
    };
    Some((n(0)?, n(1)?))
}

/// Start exec `id` attached, over its own connection to the engine: the
/// answer upgrades the connection to the raw TTY stream.
async fn start_raw(socket: &str, id: &str) -> Result<tokio::net::UnixStream, String> {
    let path = socket.trim_start_matches("unix://");
    let mut s = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| format!("cannot connect to {path}: {e}"))?;
    let body = r#"{"Detach":false,"Tty":true}"#;
    let head = format!(
        "POST /{}/exec/{id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {}\r\n\r\n{body}",
        docker::API_VERSION_PATH,
        body.len()
    );
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // Read the answer's head byte by byte: what follows it is the TTY.
    let mut answer = Vec::new();
    let mut b = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() > 8192 || s.read(&mut b).await.map_err(|e| e.to_string())? == 0 {
            return Err("the engine closed the exec connection".into());
        }
        answer.push(b[0]);
    }
    let head = String::from_utf8_lossy(&answer);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "101" && status != "200" {
        return Err(format!(
            "the engine refused to start the exec: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::resize_of;

    #[test]
    fn resize_messages() {
        assert_eq!(resize_of(r#"{"resize":[80,24]}"#), Some((80, 24)));
        assert_eq!(resize_of(r#"{"resize":[0,24]}"#), None);
        assert_eq!(resize_of(r#"{"resize":[80]}"#), None);
        assert_eq!(resize_of(r#"{"resize":[70000,24]}"#), None);
        assert_eq!(resize_of("not json"), None);
    }
}
