"""The runtime's configuration: the mounted TradingModule plus the pod's environment.

The operator mounts the resource (metadata and spec) as JSON and passes identity and
secrets through environment variables (secrets via `secretKeyRef`, so the operator never
sees them). Everything is validated before the first order; an invalid config is a
`ConfigError` whose message names each bad field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from tradeplane_operator.api.models import TradingModule

# Environment variables set on every runtime pod by the operator (see
# tradeplane_operator.resources); the kubelet stand-in adds TRADEPLANE_LISTEN_ADDRESS.
ENV_CONFIG_FILE = "TRADEPLANE_CONFIG_FILE"
ENV_MODULE_NAME = "TRADEPLANE_MODULE_NAME"
ENV_NAMESPACE = "TRADEPLANE_MODULE_NAMESPACE"
ENV_LISTEN_ADDRESS = "TRADEPLANE_LISTEN_ADDRESS"
ENV_PORT = "TRADEPLANE_PORT"
ENV_WALLET_KEY = "TRADEPLANE_WALLET_KEY"
ENV_EXCHANGE_API_KEY = "TRADEPLANE_EXCHANGE_API_KEY"
ENV_EXCHANGE_SECRET = "TRADEPLANE_EXCHANGE_SECRET"
ENV_DATABASE_URL = "TRADEPLANE_DATABASE_URL"
ENV_LOG_FORMAT = "TRADEPLANE_LOG_FORMAT"
ENV_START_HALTED = "TRADEPLANE_START_HALTED"
ENV_PORTFOLIO_HALT = "TRADEPLANE_PORTFOLIO_HALT"

DEFAULT_PORT = 8080


class ConfigError(Exception):
    """The runtime refuses to start; the message says which field and why."""


@dataclass(frozen=True)
class RuntimeConfig:
    module: TradingModule
    name: str
    namespace: str
    listen_address: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    json_logs: bool = True
    start_halted: str | None = None
    portfolio_halt: str | None = None
    # Secrets: kept out of repr so they never reach a log line or a traceback.
    wallet_key: str | None = field(default=None, repr=False)
    database_url: str | None = field(default=None, repr=False)
    exchange_api_key: str | None = field(default=None, repr=False)
    exchange_secret: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> list[str]:
        candidates = (self.wallet_key, self.database_url, self.exchange_api_key)
        return [s for s in (*candidates, self.exchange_secret) if s]


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"{prefix}{where}: {item['msg']}")
    return "; ".join(lines)


def parse_module(document: object) -> TradingModule:
    try:
        return TradingModule.model_validate(document)
    except ValidationError as error:
        raise ConfigError(f"invalid module config: {format_validation_error(error)}") from None


def load_module_file(path: Path) -> TradingModule:
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read module config {path}: {error.strerror}") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"module config {path} is not valid JSON/YAML: {error}") from None
    return parse_module(document)


def load(env: Mapping[str, str] | None = None) -> RuntimeConfig:
    env = os.environ if env is None else env
    path = env.get(ENV_CONFIG_FILE)
    if not path:
        raise ConfigError(f"{ENV_CONFIG_FILE} is not set: it must name the mounted module config")
    module = load_module_file(Path(path))
    metadata = module.metadata or {}
    name = env.get(ENV_MODULE_NAME) or metadata.get("name")
    namespace = env.get(ENV_NAMESPACE) or metadata.get("namespace") or "default"
    if not name:
        raise ConfigError(f"module name unknown: set {ENV_MODULE_NAME} or metadata.name")
    try:
        port = int(env.get(ENV_PORT, DEFAULT_PORT))
    except ValueError:
        raise ConfigError(f"{ENV_PORT} must be an integer port") from None
    wallet_key = env.get(ENV_WALLET_KEY) or None
    api_key = env.get(ENV_EXCHANGE_API_KEY) or None
    api_secret = env.get(ENV_EXCHANGE_SECRET) or None
    futures = module.spec.type == "futures_trading"
    if module.spec.mode == "live" and futures and not (api_key and api_secret):
        raise ConfigError(
            f"spec.mode is live but {ENV_EXCHANGE_API_KEY} or {ENV_EXCHANGE_SECRET} is empty: "
            "spec.exchangeSecretRef must name a Secret holding the exchange API key and secret"
        )
    if module.spec.mode == "live" and not futures and not wallet_key:
        raise ConfigError(
            f"spec.mode is live but {ENV_WALLET_KEY} is empty: "
            "spec.walletSecretRef must name a Secret key holding the wallet key"
        )
    return RuntimeConfig(
        module=module,
        name=str(name),
        namespace=str(namespace),
        listen_address=env.get(ENV_LISTEN_ADDRESS, "0.0.0.0"),
        port=port,
        json_logs=env.get(ENV_LOG_FORMAT, "json") == "json",
        start_halted=env.get(ENV_START_HALTED) or None,
        portfolio_halt=env.get(ENV_PORTFOLIO_HALT) or None,
        wallet_key=wallet_key,
        database_url=env.get(ENV_DATABASE_URL) or None,
        exchange_api_key=api_key,
        exchange_secret=api_secret,
    )
