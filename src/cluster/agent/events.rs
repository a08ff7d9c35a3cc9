//! Docker events on managed containers (a plain `docker stop`/`rm`, a
//! crash, a restart by docker's policy) wake the sync loop for an
//! immediate converge pass, which reports what changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

use crate::cluster::model::LABEL_INSTANCE;

/// Watch `docker`'s events (reconnecting after a second when the stream
/// ends); the returned notify fires on each that matters.
pub(crate) fn watch(docker: bollard::Docker) -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    tokio::spawn(watch_events(docker, notify.clone()));
    notify
}

/// True for the container actions that may change what converging does.
fn matters(action: &str) -> bool {
    matches!(action, "die" | "stop" | "destroy" | "kill" | "start")
}

async fn watch_events(docker: bollard::Docker, notify: Arc<Notify>) {
    loop {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![LABEL_INSTANCE.to_string()]),
        ]);
        let opts = bollard::query_parameters::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let mut events = docker.events(Some(opts));
        while let Some(ev) = events.next().await {
            match ev {
                Ok(e) => {
                    let action = e.action.unwrap_or_default();
                    if matters(&action) {
                        tracing::debug!(%action, "docker event");
                        notify.notify_one();
                    }
                }
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn actions_that_wake_a_converge() {
        for (action, want) in [
            ("die", true),
            ("stop", true),
            ("destroy", true),
            ("kill", true),
            ("start", true),
            ("create", false),
            ("exec_start", false),
            ("health_status", false),
        ] {
            assert_eq!(super::matters(action), want, "{action}");
        }
    }
}
