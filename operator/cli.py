"""`tradeplane-operator`: run the kopf operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import logging
import random

import prometheus_client

from . import kopf_loader


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tradeplane-operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument(
        "--peering",
        metavar="NAME",
        help="coordinate with other replicas through this KopfPeering (default: standalone)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; the highest live replica acts (default: random, so that "
        "replicas never tie: kopf pauses every replica of a tied priority)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--metrics-bind",
        default="0.0.0.0:9090",
        metavar="HOST:PORT",
        help="serve the operator's Prometheus metrics here ('' to disable)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    parser.add_argument("--log-format", default="json", choices=["json", "plain"])
    webhook = parser.add_argument_group(
        "admission webhook", "fleet budgets and dependency cycles checked at apply time"
    )
    webhook.add_argument(
        "--webhook-listen",
        metavar="HOST:PORT",
        help="serve the validating webhook (HTTPS) here, e.g. 0.0.0.0:9443 (default: off)",
    )
    webhook.add_argument(
        "--webhook-cert-dir",
        metavar="DIR",
        help="tls.crt, tls.key and optionally ca.crt (a kubernetes.io/tls Secret's layout)",
    )
    webhook.add_argument(
        "--webhook-url",
        metavar="URL",
        help="how the API server reaches the webhook (default: https://HOST:PORT)",
    )
    webhook.add_argument(
        "--webhook-configuration",
        metavar="NAME",
        help="write this ValidatingWebhookConfiguration once the webhook listens (the chart "
        "installs its own: leave unset there)",
    )
    args = parser.parse_args(argv)
    if args.priority is None:
        args.priority = random.SystemRandom().randint(1, 2**31 - 1) if args.peering else 0
    if not args.namespace and not args.all_namespaces:
        parser.error("pass --namespace NS (repeatable) or --all-namespaces")
    if args.webhook_listen and not args.webhook_cert_dir:
        parser.error("--webhook-listen needs --webhook-cert-dir")
    return args


class KopfNoise(logging.Filter):
    """Keeps kopf's per-event chatter out of the operator's log.

    kopf attaches its whole `settings` object to every record it logs about an object
    (the JSON log would print its repr, ~2 KB, on each line), and logs "Handler 'x'
    succeeded." at INFO for every event of every module: at 1,000 modules that was most
    of the operator's log volume and a measurable share of its CPU (bench/fleet.py).
    """

    def __init__(self, *, verbose: bool) -> None:
        super().__init__()
        self._verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("settings", None)
        if self._verbose or record.levelno > logging.INFO:
            return True
        msg = record.msg
        return not (
            isinstance(msg, str) and msg.startswith("Handler '") and msg.endswith(" succeeded.")
        )


def _enable_webhook(args: argparse.Namespace) -> None:
    from pathlib import Path

    from . import webhook  # registers the admission handlers with kopf

    host, _, port = args.webhook_listen.rpartition(":")
    host = host or "0.0.0.0"
    webhook.enable(
        webhook.WebhookOptions(
            listen_host=host,
            listen_port=int(port),
            cert_dir=Path(args.webhook_cert_dir),
            url=args.webhook_url or f"https://{host}:{port}",
            configuration=args.webhook_configuration,
            namespaces=() if args.all_namespaces else tuple(args.namespace),
        )
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    kopf = kopf_loader.import_kopf()  # before any module of the operator imports kopf
    from module_runtime import logs

    logs.configure(args.log_level, json_output=args.log_format == "json")
    from . import connections, handlers  # noqa: F401  (registers the handlers with kopf)

    if args.webhook_listen:
        _enable_webhook(args)

    logging.getLogger("kopf").setLevel(max(logging.INFO, logging.getLevelName(args.log_level)))
    for handler in logging.getLogger().handlers:
        handler.addFilter(KopfNoise(verbose=args.log_level == "DEBUG"))
    if args.metrics_bind:
        host, _, port = args.metrics_bind.rpartition(":")
        # prometheus_client serves from its own thread: the event loop never waits on it.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        prometheus_client.start_http_server(int(port), addr=host or "0.0.0.0")
    asyncio.run(
        kopf.operator(
            clusterwide=args.all_namespaces,
            namespaces=args.namespace,
            standalone=args.peering is None,
            peering_name=args.peering,
            priority=args.priority,
            liveness_endpoint=args.liveness,
        )
    )


if __name__ == "__main__":
    main()
