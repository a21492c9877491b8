-- 0002: metrics history and risk events.

-- A snapshot of a module's statistics (module_runtime.trade_stats), every interval.
CREATE TABLE module_metrics (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    module_id       BIGINT NOT NULL REFERENCES modules (id),
    at              TIMESTAMPTZ NOT NULL,
    trades          INTEGER NOT NULL,
    wins            INTEGER NOT NULL,
    losses          INTEGER NOT NULL,
    realized_pnl    NUMERIC NOT NULL,
    unrealized_pnl  NUMERIC NOT NULL,
    capital_in_use  NUMERIC NOT NULL,
    max_drawdown    NUMERIC NOT NULL,
    win_rate        NUMERIC,           -- NULL without trades
    profit_factor   NUMERIC,           -- NULL when undefined, 'Infinity' with no loss
    halted          BOOLEAN NOT NULL,
    open_orders     INTEGER NOT NULL,
    stats           JSONB NOT NULL     -- TradeStats.as_json(): every statistic, as strings
);
CREATE INDEX module_metrics_module_time ON module_metrics (module_id, at DESC);

-- Orders refused by the risk checks, and halts/resumes of a module.
CREATE TABLE risk_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    module_id   BIGINT NOT NULL REFERENCES modules (id),
    kind        TEXT NOT NULL CHECK (kind IN ('rejection', 'halt', 'resume')),
    reason      TEXT NOT NULL,      -- RejectReason / HaltReason code
    message     TEXT NOT NULL,
    order_id    TEXT,               -- rejections: the refused order's id (never in orders)
    detail      JSONB,              -- rejections: the refused order
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX risk_events_rejection_once ON risk_events (order_id) WHERE kind = 'rejection';
CREATE INDEX risk_events_module_time ON risk_events (module_id, at DESC);
