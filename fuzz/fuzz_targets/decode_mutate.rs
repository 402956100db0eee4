//! The pure core without the admitter: a pod object (not a review) through the view decoder and
//! `mutate::plan`, then the patch serialiser. Faster per execution than `admit`, so it explores
//! the pod-shape space deeper.
#![no_main]

use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::{self, patch, view::PodView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pod) = PodView::from_json(text) else {
        return;
    };
    let sa = ServiceAccountMeta {
        namespace: "ns".into(),
        name: "workload".into(),
        annotations: [(
            "azure.workload.identity/client-id".to_string(),
            "client".to_string(),
        )]
        .into(),
    };
    for native in [false, true] {
        let settings = azwi_webhook_fuzz::settings(native);
        if let Ok(mutation) = mutate::plan(&settings, &pod, &sa) {
            let json = patch::to_json(&mutation.ops);
            serde_json::from_slice::<serde_json::Value>(&json).expect("patch serialises as JSON");
        }
    }
});
