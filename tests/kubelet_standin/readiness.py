"""Readiness probing with the kubelet's semantics (httpGet and tcpSocket probes).

Not ready until `successThreshold` consecutive successes (after
`initialDelaySeconds`); not ready again after `failureThreshold` consecutive failures.
httpGet succeeds on a status 200-399 (redirects are not followed). A container
without a readinessProbe is ready as soon as it runs. Liveness and startup probes
are not implemented.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time

from tests.kubelet_standin.kube import JSON

log = logging.getLogger(__name__)


class ReadinessProbe:
    def __init__(self, container: JSON) -> None:
        self.spec: JSON = container.get("readinessProbe") or {}
        self.ports = {
            p["name"]: p["containerPort"] for p in container.get("ports") or [] if p.get("name")
        }
        if self.spec and not ({"httpGet", "tcpSocket"} & set(self.spec)):
            log.warning("only httpGet/tcpSocket readiness probes run; treating as ready")
            self.spec = {}
        self.ready = not self.spec
        self.next_at = self.successes = self.failures = 0

    def reset(self) -> None:
        """The container (re)started: not ready, first probe after the initial delay."""
        self.ready = not self.spec
        self.successes = self.failures = 0
        self.next_at = time.monotonic() + self.spec.get("initialDelaySeconds", 0)

    def due(self) -> bool:
        return bool(self.spec) and time.monotonic() >= self.next_at

    def _port(self, action: JSON) -> int:
        port = action["port"]
        return int(self.ports[port]) if isinstance(port, str) and port in self.ports else int(port)

    def _attempt(self, pod_ip: str) -> bool:
        timeout = self.spec.get("timeoutSeconds", 1)
        try:
            if "tcpSocket" in self.spec:
                action = self.spec["tcpSocket"]
                host = action.get("host") or pod_ip
                socket.create_connection((host, self._port(action)), timeout).close()
                return True
            action = self.spec["httpGet"]
            host, port = action.get("host") or pod_ip, self._port(action)
            conn: http.client.HTTPConnection
            if action.get("scheme", "HTTP").upper() == "HTTPS":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=ssl._create_unverified_context()
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
                conn.request("GET", action.get("path", "/"), headers=headers)
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, KeyError, ValueError):
            return False

    def run(self, pod_ip: str) -> bool:
        """Probe once; returns the (possibly changed) readiness."""
        self.next_at = time.monotonic() + self.spec.get("periodSeconds", 10)
        if self._attempt(pod_ip):
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.spec.get("successThreshold", 1):
                self.ready = True
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.spec.get("failureThreshold", 3):
                self.ready = False
        return self.ready
