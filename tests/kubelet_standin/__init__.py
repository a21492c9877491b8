"""A test stand-in for the kubelet. Test-only: never shipped in or used by the product.

The Tradeplane test control plane (`hack/testenv`) is a real kube-apiserver with no
kubelet and no scheduler, so Pods would stay Pending forever. This package plays both
parts for one Node: it binds unscheduled Pods to its Node and runs the first container
of each bound Pod as a plain local process (`command` + `args`; the image is ignored),
bound to its own loopback address 127.0.0.N, and reports Pod status the way a kubelet
does (Running, readiness from an `httpGet` probe, exit codes, graceful deletion).

It is NOT a container runtime: there is no isolation of any kind (no namespaces, no
cgroups, no filesystem, user or network separation). Processes run as the stand-in's
own user, see the host filesystem, and share the host network.

Rules a pod author should know (see `container_spec` for the details):

- Injected environment (wins over the pod's own `env`): `TRADEPLANE_LISTEN_ADDRESS`
  = the pod IP (in a cluster the runtime listens on 0.0.0.0 of its own network
  namespace; here every pod must bind its own loopback IP), `PATH` = the directory
  of the stand-in's Python interpreter + the stand-in's PATH, `HOSTNAME` = pod name.
- Path translation: `configMap`/`secret` volumes are written under
  `STATE_DIR/pods/<ns>_<name>_<uid>/volumes/<volume>/`. A process cannot see a
  mount at `/etc/...`, so every env value and every command/args element that
  equals a volumeMount's `mountPath` or starts with `mountPath + "/"` is rewritten
  to the materialized directory (longest mountPath wins; `subPath` is honoured).
- Working directory: the pod dir; stdout+stderr: `<pod dir>/container.log`.
- Termination message: the container's `terminationMessagePath` (default
  `/dev/termination-log`) is translated like a mount, to `<pod dir>/termination-log`;
  what the process wrote there (at most 4096 bytes) becomes
  `state.terminated.message`, and only when it wrote nothing does
  `FallbackToLogsOnError` use the log tail of a failed container (the kubelet's rule).
"""

from tests.kubelet_standin.launcher import start_standin, stop_standin
from tests.kubelet_standin.standin import StandIn

__all__ = ["StandIn", "start_standin", "stop_standin"]
