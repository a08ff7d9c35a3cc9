//! Requests the server relays through the sync answer (`ros compose logs`,
//! `ros compose pull`, a load balancer's HAProxy stats): each is carried out in its own task and answered
//! with `POST /v1/agent/reply`, never holding up converging; exec
//! sessions ([`super::exec`]) answer on a websocket of their own.

use super::{blocking, docker};
use crate::cluster::client::Client;
use crate::cluster::protocol::{AgentReply, AgentRequest, PullResult};

/// Carry out `req` on `docker` (whose socket is `socket`) in the
/// background and post the answer; an exec session answers on its own
/// websocket ([`super::exec`]).
pub(crate) fn spawn(
    docker: bollard::Docker,
    socket: String,
    client: Client,
    host: String,
    req: AgentRequest,
) {
    if req.kind == "exec" {
        tokio::spawn(super::exec::run(docker, socket, client, host, req));
    } else {
        tokio::spawn(answer(docker, client, host, req));
    }
}

/// Carry out one relayed request and post the answer.
async fn answer(docker: bollard::Docker, client: Client, host: String, req: AgentRequest) {
    let mut reply = AgentReply {
        request_id: req.request_id.clone(),
        ..AgentReply::default()
    };
    match req.kind.as_str() {
        "logs" => match docker::managed(&docker, &host).await {
            Ok(m) => match m.get(&req.instance_id) {
                Some(a) => match docker::logs(&docker, &a.id, req.tail, req.since_nanos).await {
                    Ok((lines, truncated)) => {
                        reply.lines = lines;
                        reply.truncated = truncated;
                    }
                    Err(e) => reply.error = Some(format!("logs of {}: {e}", req.instance_id)),
                },
                None => {
                    reply.error = Some(format!(
                        "container {} has no docker container on this host",
                        req.instance_id
                    ))
                }
            },
            Err(e) => reply.error = Some(e.to_string()),
        },
        "pull" => {
            for image in &req.images {
                let r = docker::pull(&docker, image).await;
                tracing::info!(%image, ok = r.is_ok(), "pull requested by the server");
                reply.pulls.push(PullResult {
                    image: image.clone(),
                    ok: r.is_ok(),
                    message: r.err(),
                });
            }
        }
        "lbStats" => match super::lb::stats(&docker, &req.instance_id).await {
            Ok(t) => reply.text = Some(t),
            Err(e) => reply.error = Some(e),
        },
        k => reply.error = Some(format!("this agent does not know requests of kind {k:?}")),
    }
    if let Err(e) =
        blocking(move || client.call::<serde_json::Value>("POST", "/v1/agent/reply", Some(&reply)))
            .await
    {
        tracing::warn!(error = ?e, "cannot post a reply");
    }
}
