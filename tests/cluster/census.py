"""Counting a namespace's pods from a watch: the most that ever existed at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kubernetes import client, config, watch


class PodCensus:
    """Watches the namespace's pods and records the most that ever existed at once."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        api = config.new_client_from_config(str(kubeconfig))
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._live: set[str] = set()
        self.most = 0
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
                    if event["type"] == "ADDED" and meta.uid not in self._live:
                        self._live.add(meta.uid)
                        self.created.append(meta.uid)
                    elif event["type"] == "DELETED":
                        self._live.discard(meta.uid)
                    self.most = max(self.most, len(self._live))
            except Exception:
                if self._stopped.is_set():
                    return
                time.sleep(0.2)

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()
