-- 0001: modules and their orders (intents with their outcomes).
-- Money and quantities are NUMERIC (exact, unbounded scale), never floating point.

CREATE TABLE modules (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    uid         TEXT,                       -- the TradingModule's metadata.uid (latest seen)
    type        TEXT NOT NULL,              -- spec.type
    version     TEXT,                       -- metadata.generation of the spec last run
    config      JSONB NOT NULL DEFAULT '{}'::jsonb,  -- the spec last run (no secrets in it)
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (namespace, name)
);

-- One row per order that passed the risk checks: written (status 'pending') before the
-- broker is called, updated with the outcome afterwards. order_id is the idempotency key.
CREATE TABLE orders (
    order_id          TEXT PRIMARY KEY,
    module_id         BIGINT NOT NULL REFERENCES modules (id),
    intent_seq        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,  -- "oldest first"
    venue             TEXT NOT NULL,              -- broker name: paper, web3, an exchange
    chain_id          BIGINT,                     -- EVM chain id, when the venue is a chain
    side              TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    base              TEXT NOT NULL,
    quote             TEXT NOT NULL,
    quantity          NUMERIC NOT NULL,           -- the intent: base wanted
    price             NUMERIC NOT NULL,           -- the intent: expected quote per base
    leverage          NUMERIC NOT NULL DEFAULT 1,
    min_out           NUMERIC,
    reduces_position  BOOLEAN NOT NULL DEFAULT false,
    created_at        TIMESTAMPTZ NOT NULL,       -- when the strategy made the order
    intent_at         TIMESTAMPTZ NOT NULL DEFAULT now(),  -- when the intent became durable
    status            TEXT NOT NULL DEFAULT 'pending' CHECK (
        status IN ('pending', 'sent', 'filled', 'rejected', 'reverted', 'dropped', 'cancelled')
    ),
    -- the outcome (the latest one seen; final once status is not pending/sent)
    filled_quantity   NUMERIC NOT NULL DEFAULT 0,  -- base filled
    fill_price        NUMERIC NOT NULL DEFAULT 0,  -- average quote per base
    fee               NUMERIC NOT NULL DEFAULT 0,  -- quote units
    gas_fee           NUMERIC NOT NULL DEFAULT 0,  -- native coin (ETH), paid even on revert
    tx_hash           TEXT,                        -- chain venues
    venue_order_id    TEXT,                        -- exchange venues
    reason            TEXT,
    outcome_at        TIMESTAMPTZ,                 -- Fill.at: when the venue answered
    settled_at        TIMESTAMPTZ,                 -- when the final outcome became durable
    -- booking (FILLED only): the order fills were applied to positions, for replay
    booking_seq       BIGINT UNIQUE,
    realized_pnl      NUMERIC,                     -- closing fills: the trade's PnL
    closed_cost       NUMERIC                      -- closing fills: cost basis closed
);

CREATE SEQUENCE order_booking_seq AS BIGINT;

CREATE INDEX orders_open ON orders (module_id, intent_seq) WHERE status IN ('pending', 'sent');
CREATE INDEX orders_booked ON orders (module_id, booking_seq) WHERE booking_seq IS NOT NULL;
CREATE INDEX orders_module_time ON orders (module_id, created_at DESC);
CREATE INDEX orders_tx_hash ON orders (tx_hash) WHERE tx_hash IS NOT NULL;
