"""The TradingModule API: one source for the CRD schema, the operator and the runtime.

`crds/tradingmodules.yaml` is generated from these models (`make manifests`), and the
runtime validates its mounted config with the same classes, so `kubectl`, the operator
and the runtime agree by construction. CEL rules that span fields live in
`json_schema_extra` next to the fields they guard.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "tradeplane.io"
VERSION = "v1alpha1"
KIND = "TradingModule"
PLURAL = "tradingmodules"
SINGULAR = "tradingmodule"
SHORT_NAMES = ["tm"]
CATEGORIES = ["trading"]

DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"

# Money and token quantities: exact decimals, written as strings (or whole numbers) in
# YAML so that no float ever touches them on the way in.
Money = Annotated[
    Decimal,
    Field(ge=0),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": DECIMAL_PATTERN,
            "maxLength": 40,
            "minimum": 0,
        }
    ),
]

# Percentages and ratios are bounded Decimals that YAML writes as plain numbers.
Percent = Annotated[
    Decimal, Field(ge=0, le=100), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 100})
]
Leverage = Annotated[
    Decimal, Field(ge=1, le=125), WithJsonSchema({"type": "number", "minimum": 1, "maximum": 125})
]
Multiplier = Annotated[
    Decimal, Field(ge=1, le=10), WithJsonSchema({"type": "number", "minimum": 1, "maximum": 10})
]

Currency = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$")]
Name = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]


def _quantity_cmp(left: str, op: str, right: str) -> str:
    """A CEL expression comparing two decimal fields exactly (no float)."""
    return f"quantity(string({left})).compareTo(quantity(string({right}))) {op} 0"


class ApiModel(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected (the CRD prunes nothing)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )


class ModuleType(StrEnum):
    DEX_TRADING = "dex_trading"
    FUTURES_TRADING = "futures_trading"
    ARBITRAGE = "arbitrage"
    LIQUIDITY_PROVISION = "liquidity_provision"
    SOLANA_STRATEGIES = "solana_strategies"
    CUSTOM = "custom"


class Mode(StrEnum):
    PAPER = "paper"
    LIVE = "live"
    BACKTEST = "backtest"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class CapitalSpec(ApiModel):
    """How much capital this module may use, in `currency` units."""

    allocation: Money = Field(description="Capital allocated to the module (decimal string).")
    currency: Currency = Field(
        default="USDC", description="Unit of account for allocation, limits and PnL."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "quantity(string(self.allocation)).isGreaterThan(quantity('0'))",
                    "message": "capital.allocation must be greater than 0",
                    "fieldPath": ".allocation",
                }
            ]
        }
    )


class RiskSpec(ApiModel):
    """Pre-trade limits, checked by the runtime before every order."""

    max_position_size: Money = Field(description="Largest single position, in currency units.")
    max_daily_loss: Money = Field(description="Loss per UTC day that halts the module.")
    max_drawdown_percent: Percent = Field(
        default=Decimal("20"), description="Drawdown from the equity peak that halts the module."
    )
    stop_loss_percent: Percent = Field(
        default=Decimal("5"), description="Per-position stop loss, percent of entry value."
    )
    max_open_positions: int = Field(default=1, ge=1, le=1000)
    max_leverage: Leverage = Field(default=Decimal("1"), description="1 means no leverage.")


class SecretKeyRef(ApiModel):
    """A key of a Secret in the module's own namespace; the operator never reads it."""

    name: Name
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class ExchangeSecretRef(ApiModel):
    """An exchange API key and secret: two keys of one Secret in the module's namespace;
    the operator never reads them (they reach the pod by `secretKeyRef`)."""

    name: Name
    api_key_key: str = Field(
        default="api-key", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$"
    )
    secret_key: str = Field(
        default="api-secret", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$"
    )


class BackoffSpec(ApiModel):
    initial_seconds: int = Field(default=5, ge=1, le=3600)
    max_seconds: int = Field(default=300, ge=1, le=86400)
    multiplier: Multiplier = Field(default=Decimal("2"))

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.maxSeconds >= self.initialSeconds",
                    "message": "health.backoff.maxSeconds must be >= initialSeconds",
                    "fieldPath": ".maxSeconds",
                }
            ]
        }
    )


class HealthSpec(ApiModel):
    """How the operator probes the runtime and when it gives up restarting it."""

    interval_seconds: int = Field(default=10, ge=1, le=3600)
    timeout_seconds: int = Field(default=2, ge=1, le=300)
    failure_threshold: int = Field(default=3, ge=1, le=100)
    max_restarts: int = Field(default=5, ge=0, le=1000)
    restart_window_seconds: int = Field(default=600, ge=1, le=604800)
    cooldown_seconds: int = Field(
        default=300, ge=1, le=86400, description="Open breaker waits this long before a trial."
    )
    backoff: BackoffSpec = Field(default_factory=BackoffSpec)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.timeoutSeconds <= self.intervalSeconds",
                    "message": "health.timeoutSeconds must not exceed intervalSeconds",
                    "fieldPath": ".timeoutSeconds",
                }
            ]
        }
    )


class MarketDataSource(StrEnum):
    SYNTHETIC = "synthetic"
    EVM = "evm"


class MarketDataSpec(ApiModel):
    """Where the module reads prices. `synthetic` is a seeded random walk (demos and
    paper runs without a venue); `evm` reads the module's pools over JSON-RPC."""

    source: MarketDataSource = Field(default=MarketDataSource.SYNTHETIC)
    seed: int = Field(default=1, ge=0, le=2**31 - 1)
    start_price: Money = Field(default=Decimal("3000"), description="Synthetic first price.")
    volatility_percent: Percent = Field(
        default=Decimal("0.5"), description="Synthetic: largest move per step, percent."
    )
    step_seconds: int = Field(default=5, ge=1, le=86400, description="Synthetic: seconds per step.")
    rpc_url: str | None = Field(
        default=None, max_length=512, pattern=r"^(https?|wss?)://", description="EVM JSON-RPC URL."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.source != 'evm' || has(self.rpcUrl)",
                    "message": "marketData.rpcUrl is required when source is evm",
                    "fieldPath": ".rpcUrl",
                    "reason": "FieldValueRequired",
                }
            ]
        }
    )


Bps = Annotated[
    Decimal,
    Field(ge=0, lt=10_000),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 9999}),
]
# A ratio threshold that may be negative (a Sharpe ratio).
Ratio = Annotated[
    Decimal,
    Field(ge=-1000, le=1000),
    WithJsonSchema({"type": "number", "minimum": -1000, "maximum": 1000}),
]
Timestamp = Annotated[
    str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")
]


class BacktestSource(StrEnum):
    CSV = "csv"
    SYNTHETIC = "synthetic"
    EVM = "evm"


class BacktestSpec(ApiModel):
    """`mode: backtest`: the module's own strategy over historical candles, to the end.

    `csv`: OHLCV rows (`time,open,high,low,close[,volume]`, time in RFC 3339 or epoch
    seconds) from key `key` of ConfigMap `configMap` (mounted into the pod), or from
    `path` inside the pod; `synthetic`: a seeded random walk of `candles` candles;
    `evm`: one candle per block from `fromBlock` to `toBlock` (the pool's mid price).
    """

    source: BacktestSource = Field(default=BacktestSource.SYNTHETIC)
    config_map: Name | None = Field(default=None, description="csv: ConfigMap with the file.")
    key: str | None = Field(
        default=None, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="csv: its key."
    )
    path: str | None = Field(
        default=None, max_length=1024, pattern=r"^/", description="csv: a file in the pod."
    )
    start: Timestamp | None = Field(default=None, description="First candle time (UTC).")
    end: Timestamp | None = Field(default=None, description="Candles before this time (UTC).")
    timeframe: str = Field(
        default="1m", pattern=r"^[1-9][0-9]{0,5}[smhd]$", description="Candle length: 1m, 1h."
    )
    candles: int = Field(default=1440, ge=2, le=10_000_000, description="synthetic: how many.")
    seed: int = Field(default=1, ge=0, le=2**31 - 1)
    start_price: Money = Field(default=Decimal("3000"), description="synthetic: first price.")
    volatility_percent: Percent = Field(
        default=Decimal("0.5"), description="synthetic: largest move per candle, percent."
    )
    rpc_url: str | None = Field(
        default=None, max_length=512, pattern=r"^(https?|wss?)://", description="evm: node."
    )
    pool: str | None = Field(
        default=None, pattern=r"^0x[0-9a-fA-F]{40}$", description="evm: the pair."
    )
    from_block: int | None = Field(default=None, ge=0, description="evm: first block.")
    to_block: int | None = Field(default=None, ge=0, description="evm: last block (inclusive).")
    fee_bps: Bps = Field(default=Decimal(30), description="Fee per fill, basis points.")
    slippage_bps: Bps = Field(default=Decimal(10), description="Slippage per fill, basis points.")
    starting_balance: Money | None = Field(
        default=None, description="Defaults to capital.allocation."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.source != 'csv' || has(self.path) || "
                    "(has(self.configMap) && has(self.key))",
                    "message": "backtest.source csv needs configMap and key, or path",
                    "fieldPath": ".configMap",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.source != 'evm' || (has(self.rpcUrl) && has(self.fromBlock) "
                    "&& has(self.toBlock))",
                    "message": "backtest.source evm needs rpcUrl, fromBlock and toBlock",
                    "fieldPath": ".rpcUrl",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.fromBlock) || !has(self.toBlock) || "
                    "self.toBlock > self.fromBlock",
                    "message": "backtest.toBlock must be greater than fromBlock",
                    "fieldPath": ".toBlock",
                },
                {
                    "rule": "!has(self.start) || !has(self.end) || self.end > self.start",
                    "message": "backtest.end must be after start",
                    "fieldPath": ".end",
                },
            ]
        }
    )


class PromotionSpec(ApiModel):
    """What a run must show before `tradeplane.io/promote` moves it on: backtest ->
    paper on the backtest's report, paper -> live on the paper run's own metrics."""

    min_trades: int = Field(default=10, ge=0, le=10_000_000)
    min_profit_factor: Ratio = Field(default=Decimal("1"))
    max_drawdown_percent: Percent = Field(default=Decimal("20"))
    min_sharpe: Ratio | None = Field(default=None, description="Unset: not checked.")
    min_paper_seconds: int = Field(
        default=86_400, ge=0, le=31_536_000, description="Paper run time before live."
    )


class ResourcesSpec(ApiModel):
    """Container resources, as in a Pod (`cpu`, `memory` quantities)."""

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)


class TradingModuleSpec(ApiModel):
    type: ModuleType = Field(description="Which module to run.")
    mode: Mode = Field(
        default=Mode.PAPER, description="paper simulates fills; live signs and sends."
    )
    enabled: bool = Field(default=True, description="false removes the runtime pod.")
    paused: bool = Field(default=False, description="true keeps the pod but opens no positions.")
    image: str | None = Field(default=None, max_length=512, description="Runtime image.")
    version: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        description="Runtime image tag, when image is not set.",
    )
    entry_point: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Entry point (group tradeplane.modules) for type custom.",
    )
    capital: CapitalSpec
    risk: RiskSpec
    strategy: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form strategy parameters, validated by the module.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    market_data: MarketDataSpec = Field(default_factory=MarketDataSpec)
    wallet_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Wallet key (required in live mode)."
    )
    exchange_secret_ref: ExchangeSecretRef | None = Field(
        default=None, description="Exchange API key and secret (live futures_trading)."
    )
    health: HealthSpec = Field(default_factory=HealthSpec)
    depends_on: list[Name] = Field(default_factory=list, max_length=64)
    portfolio: Name | None = Field(
        default=None,
        description="A TradingPortfolio in the same namespace whose budget this module's "
        "capital.allocation counts against.",
    )
    log_level: LogLevel = Field(default=LogLevel.INFO)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    backtest: BacktestSpec | None = Field(default=None, description="mode backtest: the data.")
    promotion: PromotionSpec | None = Field(
        default=None, description="Thresholds for tradeplane.io/promote (defaults if unset)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode != 'live' || self.type == 'futures_trading' "
                    "|| has(self.walletSecretRef)",
                    "message": "walletSecretRef is required when mode is live",
                    "fieldPath": ".walletSecretRef",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.mode != 'live' || self.type != 'futures_trading' "
                    "|| has(self.exchangeSecretRef)",
                    "message": "exchangeSecretRef is required when mode is live and type is "
                    "futures_trading",
                    "fieldPath": ".exchangeSecretRef",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": _quantity_cmp(
                        "self.risk.maxPositionSize", "<=", "self.capital.allocation"
                    ),
                    "message": "risk.maxPositionSize must not exceed capital.allocation",
                    "fieldPath": ".risk.maxPositionSize",
                },
                {
                    "rule": _quantity_cmp(
                        "self.risk.maxDailyLoss", "<=", "self.capital.allocation"
                    ),
                    "message": "risk.maxDailyLoss must not exceed capital.allocation",
                    "fieldPath": ".risk.maxDailyLoss",
                },
                {
                    "rule": "self.type != 'custom' || has(self.entryPoint)",
                    "message": "entryPoint is required when type is custom",
                    "fieldPath": ".entryPoint",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.image) || !has(self.version)",
                    "message": "set image or version, not both",
                    "fieldPath": ".version",
                },
            ]
        }
    )


# ---- status -----------------------------------------------------------------------------


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    DISABLED = "Disabled"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"  # a backtest ran to its end


class Health(StrEnum):
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    UNKNOWN = "Unknown"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Condition(ApiModel):
    """A condition as the Kubernetes API conventions define it."""

    type: str
    status: str = Field(pattern=r"^(True|False|Unknown)$")
    reason: str = Field(max_length=1024, pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$")
    message: str = Field(default="", max_length=32768)
    last_transition_time: str
    observed_generation: int | None = None


class Breaker(ApiModel):
    state: BreakerState = BreakerState.CLOSED
    since: str | None = None


class Halt(ApiModel):
    reason: str
    message: str = ""
    since: str


class Resume(ApiModel):
    """Who cleared the last risk halt (the annotation's value) and when."""

    by: str
    at: str


class PendingRestart(ApiModel):
    """Why the pod was removed; `failure` restarts go through backoff and the breaker."""

    reason: str
    failure: bool
    since: str


class MetricsSummary(ApiModel):
    """What the runtime reports, as decimal strings so no float rounds the PnL."""

    trades: int = 0
    win_rate: str | None = None
    realized_pnl: str = "0"
    unrealized_pnl: str = "0"
    profit_factor: str | None = None
    max_drawdown: str = "0"
    capital_in_use: str = "0"
    max_drawdown_percent: str | None = None
    sharpe: str | None = None


class BacktestReport(ApiModel):
    """A backtest's result, decimal strings (the runtime's termination message, the
    `<module>-backtest` ConfigMap and `status.backtest`). See docs/backtest.md."""

    trades: int
    wins: int
    losses: int
    win_rate: str | None = None
    realized_pnl: str
    unrealized_pnl: str = "0"
    gross_profit: str = "0"
    gross_loss: str = "0"
    profit_factor: str | None = None
    max_drawdown: str = "0"
    max_drawdown_percent: str = "0"
    sharpe: str | None = None
    sortino: str | None = None
    annualization: str = ""
    exposure_percent: str = "0"
    exposure_seconds: int = 0
    best_trade: str | None = None
    worst_trade: str | None = None
    fees: str = "0"
    funding: str = "0"  # perpetuals: funding received (negative: paid), in realized PnL
    liquidations: int = 0
    starting_balance: str
    ending_equity: str
    data_start: str
    data_end: str
    timeframe: str = ""
    source: str = ""
    candles: int
    wall_seconds: str
    halted: str | None = None
    pod_uid: str | None = None  # the pod that ran it (set by the operator)
    finished_at: str | None = None


class PromotionRecord(ApiModel):
    """One promotion: who asked (the annotation's value), when, and on which figures."""

    from_mode: Mode
    to_mode: Mode
    by: str
    at: str
    figures: dict[str, str] = Field(default_factory=dict)


class TradingModuleStatus(ApiModel):
    phase: Phase | None = None
    health: Health | None = None
    message: str | None = None
    pod_name: str | None = None
    observed_generation: int | None = None
    restarts: int = 0
    consecutive_failures: int = 0
    last_probe_time: str | None = None
    recent_restarts: list[str] = Field(
        default_factory=list, max_length=1000, description="Failure restarts in the window."
    )
    pending_restart: PendingRestart | None = None
    breaker: Breaker | None = None
    halt: Halt | None = None
    last_resume: Resume | None = None
    metrics: MetricsSummary | None = None
    # The generation whose runtime exited 2 (invalid config): not retried until a newer one.
    invalid_config_generation: int | None = None
    backtest: BacktestReport | None = None
    paper_since: str | None = Field(default=None, description="When the paper run began.")
    promotions: list[PromotionRecord] = Field(default_factory=list, max_length=100)
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class TradingModule(ApiModel):
    """A whole resource, as the runtime reads it from its mounted config."""

    api_version: str = Field(default=f"{GROUP}/{VERSION}")
    kind: str = Field(default=KIND)
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: TradingModuleSpec
    status: TradingModuleStatus | None = None


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Health", "type": "string", "jsonPath": ".status.health"},
    {"name": "Capital", "type": "string", "jsonPath": ".spec.capital.allocation"},
    {"name": "PnL", "type": "string", "jsonPath": ".status.metrics.realizedPnl"},
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
