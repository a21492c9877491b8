"""`kubectl trading`: operate Tradeplane modules and portfolios (a kubectl plugin).

Installed as the console script `kubectl-trading`; kubectl finds it on PATH, so
`kubectl trading status` runs it. Like `kubectl cnpg`, one verb per operation on a
resource name, and the usual kubectl flags (-n, -A, --context, --kubeconfig, --as).

It writes only through the documented fields and annotations, with kubectl itself (so
kubectl's authentication, impersonation and the API server's admission all apply), and
records who asked (`--as`, else the authenticated user) in the annotation it writes:

  pause / resume NAME        spec.paused of a module
  halt / resume-halt NAME    a portfolio's kill switch (spec.halted; resume-halt also
                             clears a loss-limit halt); resume-halt on a module: its
                             tradeplane.io/resume-halt annotation
  reset-breaker NAME         tradeplane.io/reset-breaker on a module
  allocate NAME AMOUNT       spec.capital.allocation (refused by admission over budget)
  promote NAME               tradeplane.io/promote on a module
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

MODULES = "tradingmodules.tradeplane.io"
PORTFOLIOS = "tradingportfolios.tradeplane.io"
ANNOTATION_CHANGED_BY = "tradeplane.io/changed-by"
ANNOTATION_RESUME = "tradeplane.io/resume-halt"
ANNOTATION_RESET_BREAKER = "tradeplane.io/reset-breaker"
ANNOTATION_PROMOTE = "tradeplane.io/promote"


class PluginError(Exception):
    """Shown to the user as `error: ...`, exit code 1."""


class Kubectl:
    def __init__(self, args: argparse.Namespace) -> None:
        self.binary = os.environ.get("KUBECTL", "kubectl")
        self.flags: list[str] = []
        if args.kubeconfig:
            self.flags += ["--kubeconfig", args.kubeconfig]
        if args.context:
            self.flags += ["--context", args.context]
        if args.as_user:
            self.flags += ["--as", args.as_user]
        self.namespace: str | None = args.namespace
        self.all_namespaces: bool = getattr(args, "all_namespaces", False)

    def _ns(self) -> list[str]:
        if self.all_namespaces:
            return ["--all-namespaces"]
        return ["-n", self.namespace] if self.namespace else []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *self.flags, *args], capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise PluginError(proc.stderr.strip() or f"kubectl {' '.join(args)} failed")
        return proc

    def get(self, resource: str, name: str | None = None) -> Any:
        args = ["get", resource, *([name] if name else []), *self._ns(), "-o", "json"]
        proc = self.run(*args, check=False)
        if proc.returncode != 0:
            if name and "NotFound" in proc.stderr:
                return None
            raise PluginError(proc.stderr.strip())
        return json.loads(proc.stdout)

    def patch(self, resource: str, name: str, patch: dict[str, Any]) -> None:
        self.run("patch", resource, name, *self._ns(), "--type=merge", "-p", json.dumps(patch))

    def whoami(self, as_user: str | None) -> str:
        if as_user:
            return as_user
        proc = self.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
        proc = self.run(
            "config", "view", "--minify", "-o", "jsonpath={.contexts[0].context.user}", check=False
        )
        return proc.stdout.strip() or "unknown"


# ---- what the commands show ---------------------------------------------------------


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _condition(status: dict[str, Any], type: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type), {})


def module_row(item: dict[str, Any], with_namespace: bool) -> list[str]:
    meta, spec, st = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    metrics = st.get("metrics") or {}
    halts = []
    if st.get("halt"):
        halts.append(f"risk:{st['halt'].get('reason')}")
    portfolio_halt = _condition(st, "PortfolioHalted")
    if portfolio_halt.get("status") == "True":
        halts.append(f"portfolio:{portfolio_halt.get('reason')}")
    row = [
        meta["name"],
        spec.get("portfolio") or "-",
        st.get("phase") or "-",
        st.get("health") or "-",
        "yes" if spec.get("paused") else "no",
        str((spec.get("capital") or {}).get("allocation", "-")),
        metrics.get("realizedPnl", "-"),
        metrics.get("unrealizedPnl", "-"),
        (st.get("breaker") or {}).get("state", "closed"),
        ",".join(halts) or "-",
        str(st.get("restarts", 0)),
    ]
    return [meta["namespace"], *row] if with_namespace else row


MODULE_HEADER = [
    "NAME",
    "PORTFOLIO",
    "PHASE",
    "HEALTH",
    "PAUSED",
    "CAPITAL",
    "REALIZED",
    "UNREALIZED",
    "BREAKER",
    "HALT",
    "RESTARTS",
]
PORTFOLIO_HEADER = ["NAME", "BUDGET", "ALLOCATED", "AVAILABLE", "USED", "MEMBERS", "PNL", "HALT"]


def portfolio_row(item: dict[str, Any], with_namespace: bool) -> list[str]:
    meta, spec, st = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    budget = _decimal(spec.get("budget"))
    allocated = _decimal(st.get("allocated"))
    used = f"{(allocated / budget * 100):.1f}%" if budget else "-"
    halt = (st.get("halt") or {}).get("reason") or ("KillSwitch" if spec.get("halted") else "-")
    row = [
        meta["name"],
        f"{spec.get('budget')} {spec.get('currency', 'USDC')}",
        st.get("allocated", "-"),
        st.get("available", "-"),
        used,
        str((st.get("members") or {}).get("total", 0)),
        st.get("pnl", "-"),
        halt,
    ]
    return [meta["namespace"], *row] if with_namespace else row


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def status_overview(
    modules: list[dict[str, Any]], portfolios: list[dict[str, Any]], wide: bool
) -> str:
    prefix = ["NAMESPACE"] if wide else []
    parts = ["Modules"]
    if modules:
        parts.append(_table([prefix + MODULE_HEADER, *(module_row(m, wide) for m in modules)]))
    else:
        parts.append("  (none)")
    parts += ["", "Portfolios"]
    if portfolios:
        rows = [prefix + PORTFOLIO_HEADER, *(portfolio_row(p, wide) for p in portfolios)]
        parts.append(_table(rows))
    else:
        parts.append("  (none)")
    return "\n".join(parts)


def module_detail(item: dict[str, Any]) -> str:
    meta, spec, st = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    metrics = st.get("metrics") or {}
    lines = [
        f"Module {meta['namespace']}/{meta['name']}",
        f"  type/mode:   {spec.get('type')} / {spec.get('mode', 'paper')}",
        f"  portfolio:   {spec.get('portfolio') or '-'}",
        f"  phase:       {st.get('phase', '-')}  health: {st.get('health', '-')}",
        f"  message:     {st.get('message', '-')}",
        f"  pod:         {st.get('podName', '-')}  restarts: {st.get('restarts', 0)}",
        f"  paused:      {bool(spec.get('paused'))}",
        f"  capital:     {(spec.get('capital') or {}).get('allocation')} "
        f"{(spec.get('capital') or {}).get('currency', 'USDC')}",
        f"  PnL:         realized {metrics.get('realizedPnl', '-')}, "
        f"unrealized {metrics.get('unrealizedPnl', '-')}, trades {metrics.get('trades', 0)}",
        f"  breaker:     {(st.get('breaker') or {}).get('state', 'closed')}",
        f"  risk halt:   {json.dumps(st['halt']) if st.get('halt') else '-'}",
    ]
    ph = _condition(st, "PortfolioHalted")
    lines.append(f"  portfolio halt: {ph.get('reason') if ph.get('status') == 'True' else '-'}")
    lines.append("  conditions:")
    for c in st.get("conditions") or []:
        lines.append(f"    {c['type']}={c['status']} ({c.get('reason')}): {c.get('message', '')}")
    return "\n".join(lines)


def portfolio_detail(item: dict[str, Any], members: list[dict[str, Any]]) -> str:
    meta, spec, st = item["metadata"], item.get("spec") or {}, item.get("status") or {}
    lines = [
        f"Portfolio {meta['namespace']}/{meta['name']}",
        f"  budget:      {spec.get('budget')} {spec.get('currency', 'USDC')}",
        f"  allocated:   {st.get('allocated', '-')}  available: {st.get('available', '-')}",
        f"  PnL:         {st.get('pnl', '-')} (realized {st.get('realizedPnl', '-')}, "
        f"unrealized {st.get('unrealizedPnl', '-')})",
        f"  kill switch: {'on' if spec.get('halted') else 'off'}",
        f"  halt:        {json.dumps(st['halt']) if st.get('halt') else '-'}",
        f"  last resume: {json.dumps(st['lastResume']) if st.get('lastResume') else '-'}",
        "",
        "Members",
    ]
    rows = [MODULE_HEADER, *(module_row(m, False) for m in members)]
    lines.append(_table(rows) if members else "  (none)")
    return "\n".join(lines)


# ---- the commands -------------------------------------------------------------------


def _target(kc: Kubectl, name: str, prefer: str) -> tuple[str, str]:
    """(resource, name): `tp/NAME` or `tm/NAME` say which; else look it up."""
    kinds = {"tp": PORTFOLIOS, "tm": MODULES}
    if "/" in name:
        kind, _, bare = name.partition("/")
        if kind in kinds:
            return kinds[kind], bare
    order = [PORTFOLIOS, MODULES] if prefer == PORTFOLIOS else [MODULES, PORTFOLIOS]
    for resource in order:
        if kc.get(resource, name) is not None:
            return resource, name
    raise PluginError(f'no TradingModule or TradingPortfolio "{name}" in this namespace')


def _module(kc: Kubectl, name: str) -> dict[str, Any]:
    found = kc.get(MODULES, name.removeprefix("tm/"))
    if found is None:
        raise PluginError(f'TradingModule "{name}" not found')
    return found  # type: ignore[no-any-return]


def _by(who: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {ANNOTATION_CHANGED_BY: who}}}


def cmd_status(kc: Kubectl, args: argparse.Namespace) -> str:
    if args.name:
        resource, name = _target(kc, args.name, MODULES)
        item = kc.get(resource, name)
        if resource == MODULES:
            return module_detail(item)
        modules = kc.get(MODULES)["items"]
        members = [m for m in modules if (m.get("spec") or {}).get("portfolio") == name]
        return portfolio_detail(item, members)
    modules = kc.get(MODULES)["items"]
    portfolios = kc.get(PORTFOLIOS)["items"]
    return status_overview(modules, portfolios, kc.all_namespaces)


def cmd_pause(kc: Kubectl, args: argparse.Namespace, paused: bool) -> str:
    name = _module(kc, args.name)["metadata"]["name"]
    kc.patch(MODULES, name, {**_by(args.who), "spec": {"paused": paused}})
    return f"tradingmodule/{name} {'paused' if paused else 'resumed'} by {args.who}"


def cmd_halt(kc: Kubectl, args: argparse.Namespace) -> str:
    resource, name = _target(kc, args.name, PORTFOLIOS)
    if resource != PORTFOLIOS:
        raise PluginError(
            f"{name} is a TradingModule: a module halts by its own risk limits or its "
            f"portfolio's kill switch; `kubectl trading pause {name}` stops its new exposure"
        )
    kc.patch(PORTFOLIOS, name, {**_by(args.who), "spec": {"halted": True}})
    return f"tradingportfolio/{name} halted (kill switch) by {args.who}: every member halts"


def cmd_resume_halt(kc: Kubectl, args: argparse.Namespace) -> str:
    resource, name = _target(kc, args.name, PORTFOLIOS if args.portfolio else MODULES)
    if resource == PORTFOLIOS:
        patch = {
            "metadata": {
                "annotations": {ANNOTATION_CHANGED_BY: args.who, ANNOTATION_RESUME: args.who}
            },
            "spec": {"halted": False},
        }
        kc.patch(PORTFOLIOS, name, patch)
        return f"tradingportfolio/{name} resumed by {args.who}"
    kc.patch(MODULES, name, {"metadata": {"annotations": {ANNOTATION_RESUME: args.who}}})
    return f"tradingmodule/{name}: risk halt cleared by {args.who} (its pod is replaced)"


def cmd_annotate(kc: Kubectl, args: argparse.Namespace, key: str, done: str) -> str:
    name = _module(kc, args.name)["metadata"]["name"]
    kc.patch(MODULES, name, {"metadata": {"annotations": {key: args.who}}})
    return f"tradingmodule/{name}: {done} by {args.who}"


def cmd_allocate(kc: Kubectl, args: argparse.Namespace) -> str:
    try:
        amount = Decimal(args.amount)
    except InvalidOperation:
        raise PluginError(f"AMOUNT must be a decimal number, not {args.amount!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise PluginError(f"AMOUNT must be greater than 0, not {args.amount}")
    name = _module(kc, args.name)["metadata"]["name"]
    kc.patch(MODULES, name, {**_by(args.who), "spec": {"capital": {"allocation": args.amount}}})
    return f"tradingmodule/{name}: spec.capital.allocation set to {args.amount} by {args.who}"


def cmd_logs(kc: Kubectl, args: argparse.Namespace) -> int:
    item = _module(kc, args.name)
    pod = (item.get("status") or {}).get("podName") or f"{item['metadata']['name']}-runtime"
    command = [kc.binary, *kc.flags, "logs", *kc._ns(), f"pod/{pod}", "-c", "runtime"]
    if args.follow:
        command.append("--follow")
    if args.tail is not None:
        command += ["--tail", str(args.tail)]
    if args.previous:
        command.append("--previous")
    return subprocess.call(command)


COMMANDS = {
    "status": "one screen: modules, health, PnL, breaker, halts, portfolio budget use",
    "pause": "stop a module opening positions (spec.paused: true)",
    "resume": "let a paused module open positions again (spec.paused: false)",
    "halt": "the kill switch: halt every member of a portfolio (spec.halted: true)",
    "resume-halt": "lift a portfolio's halt, or clear a module's risk halt",
    "reset-breaker": "close a module's open circuit breaker",
    "allocate": "set a module's capital (spec.capital.allocation); admission checks the budget",
    "promote": "ask to promote a module (annotation tradeplane.io/promote)",
    "logs": "the runtime pod's log",
}


def _flags(*, defaults: bool) -> argparse.ArgumentParser:
    """kubectl's flags, before or after the command (after: no defaults, or they would
    overwrite what was given before)."""
    common = argparse.ArgumentParser(add_help=False)
    default = None if defaults else argparse.SUPPRESS
    common.add_argument(
        "-n", "--namespace", default=default, help="the namespace (default: the context's)"
    )
    common.add_argument("--context", default=default, help="the kubeconfig context")
    common.add_argument("--kubeconfig", default=default, help="the kubeconfig file")
    common.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        default=default,
        help="act as USER (recorded as who asked)",
    )
    return common


def parser() -> argparse.ArgumentParser:
    common = _flags(defaults=False)
    top = argparse.ArgumentParser(
        prog="kubectl trading",
        description="Operate Tradeplane trading modules and portfolios.",
        parents=[_flags(defaults=True)],
    )
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status = sub.add_parser("status", help=COMMANDS["status"], parents=[common])
    status.add_argument("name", nargs="?", metavar="NAME", help="a module or portfolio (tp/NAME)")
    status.add_argument("-A", "--all-namespaces", action="store_true")
    for command in ("pause", "resume", "halt", "reset-breaker", "promote"):
        p = sub.add_parser(command, help=COMMANDS[command], parents=[common])
        p.add_argument("name", metavar="NAME")
    resume_halt = sub.add_parser("resume-halt", help=COMMANDS["resume-halt"], parents=[common])
    resume_halt.add_argument("name", metavar="NAME", help="a module, or a portfolio (tp/NAME)")
    resume_halt.add_argument(
        "-p", "--portfolio", action="store_true", help="NAME is a portfolio (if both exist)"
    )
    allocate = sub.add_parser("allocate", help=COMMANDS["allocate"], parents=[common])
    allocate.add_argument("name", metavar="NAME")
    allocate.add_argument("amount", metavar="AMOUNT", help="a decimal, e.g. 2500.50")
    logs = sub.add_parser("logs", help=COMMANDS["logs"], parents=[common])
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=int)
    logs.add_argument("--previous", action="store_true")
    return top


def run(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    kc = Kubectl(args)
    try:
        if args.command == "logs":
            return cmd_logs(kc, args)
        if args.command == "status":
            print(cmd_status(kc, args))
            return 0
        args.who = kc.whoami(args.as_user)
        if args.command in ("pause", "resume"):
            out = cmd_pause(kc, args, args.command == "pause")
        elif args.command == "halt":
            out = cmd_halt(kc, args)
        elif args.command == "resume-halt":
            out = cmd_resume_halt(kc, args)
        elif args.command == "reset-breaker":
            out = cmd_annotate(kc, args, ANNOTATION_RESET_BREAKER, "circuit breaker reset asked")
        elif args.command == "promote":
            out = cmd_annotate(kc, args, ANNOTATION_PROMOTE, "promotion asked")
        else:
            out = cmd_allocate(kc, args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(out)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
