"""Counting a namespace's pods from a watch: the most that ever existed at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kubernetes import client, config, watch

MODULE_UID = "tradeplane.io/module-uid"


class PodCensus:
    """Watches the namespace's pods and records the most that ever existed at once.

    `most` counts all pods of the namespace; `most_for_one_module` the most that one
    module (its module-uid label) ever had at once, which is what rule 1 bounds by 1.
    """

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        api = config.new_client_from_config(str(kubeconfig))
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._live: set[str] = set()
        self._by_module: dict[str, set[str]] = {}
        self.most = 0
        self.most_for_one_module = 0
        self.created: list[str] = []
        self._watch = watch.Watch()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = ""
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    resource_version=version,
                    timeout_seconds=60,
                ):
                    meta = event["object"].metadata
                    version = meta.resource_version
                    module = self._by_module.setdefault(
                        (meta.labels or {}).get(MODULE_UID, ""), set()
                    )
                    if event["type"] == "ADDED" and meta.uid not in self._live:
                        self._live.add(meta.uid)
                        self.created.append(meta.uid)
                        module.add(meta.uid)
                    elif event["type"] == "DELETED":
                        self._live.discard(meta.uid)
                        module.discard(meta.uid)
                    self.most = max(self.most, len(self._live))
                    if (meta.labels or {}).get(MODULE_UID):
                        self.most_for_one_module = max(self.most_for_one_module, len(module))
            except Exception as error:
                if self._stopped.is_set():
                    return
                if getattr(error, "status", None) == 410:  # history gone (API restarted)
                    version = self._relist()
                time.sleep(0.2)

    def _relist(self) -> str:
        """After a 410 the missed events are lost: take the live set from a fresh list.

        Pods deleted in the gap leave the set; pods created in it enter it (and
        `created`), so the counts stay exact across an API server or etcd restart."""
        listed = self._core.list_namespaced_pod(self._namespace)
        self._live = set()
        self._by_module = {}
        for pod in listed.items:
            meta = pod.metadata
            if meta.uid not in self.created:
                self.created.append(meta.uid)
            self._live.add(meta.uid)
            key = (meta.labels or {}).get(MODULE_UID, "")
            self._by_module.setdefault(key, set()).add(meta.uid)
        self.most = max(self.most, len(self._live))
        self.most_for_one_module = max(
            [self.most_for_one_module] + [len(uids) for key, uids in self._by_module.items() if key]
        )
        return str(listed.metadata.resource_version)

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()
