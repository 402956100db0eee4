//! Wakes the rotator when its MutatingWebhookConfiguration or its certificate Secret changes, so that a
//! `caBundle` changed by someone else (a GitOps tool re-applying the configuration) is repaired within
//! seconds, as upstream's cert-controller does, instead of at the next periodic pass: with
//! `failurePolicy: Fail`, every labelled pod is refused until then. The periodic pass stays as a backstop.
//!
//! Each object is watched by name (`fieldSelector=metadata.name=NAME`, which RBAC `resourceNames` can
//! pin) and metadata only: every change bumps the resourceVersion, which is all the rotator needs to know,
//! and the Secret's keys are not streamed a second time. A failing watch backs off (0.8 s doubling to
//! 30 s, with jitter) and is reset only once the API server answers again.

use std::fmt::Debug;
use std::pin::pin;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::k8s::cache::backoff::Backoff;

/// Watches the object `name` of `api` forever, calling `changed.notify_one()` for every change and after
/// every (re)list, since anything may have changed while the watch was down.
pub(super) async fn notify_changes<K>(
    api: Api<PartialObjectMeta<K>>,
    name: String,
    changed: Arc<Notify>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let what = K::kind(&K::DynamicType::default()).into_owned();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    // The watcher retries as soon as it is polled after an error; the delay is ours.
    let mut events = pin!(watcher(api, config));
    let mut backoff = Backoff::default();
    let mut failing = false;
    while let Some(event) = events.next().await {
        match event {
            // Yielded before the list request is sent: no proof the API server answers.
            Ok(watcher::Event::Init) => {}
            Ok(event) => {
                backoff.reset();
                if std::mem::take(&mut failing) {
                    tracing::info!(kind = %what, %name, "certificate watch recovered");
                }
                if matches!(
                    event,
                    watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)
                ) {
                    changed.notify_one();
                }
            }
            Err(error) => {
                let delay = backoff.next_delay();
                // One warning per outage; the periodic pass still repairs meanwhile.
                if std::mem::replace(&mut failing, true) {
                    tracing::debug!(kind = %what, %name, %error, ?delay, "certificate watch still failing");
                } else {
                    tracing::warn!(kind = %what, %name, %error,
                        "certificate watch failing; changes are repaired by the periodic pass until it recovers");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
    // `watcher` streams never end.
    tracing::error!(kind = %what, %name, "certificate watch ended");
}
