-- 0003: perpetual futures. Orders say which market they trade; funding payments and
-- liquidations are ledger entries of their own, booked in the one booking order.

ALTER TABLE orders ADD COLUMN market TEXT NOT NULL DEFAULT 'spot'
    CHECK (market IN ('spot', 'perp'));

-- One row per funding payment or liquidation; event_id is the idempotency key (the
-- funding time or the venue's own id). booking_seq comes from the orders' sequence, so
-- replaying fills and events in booking_seq order rebuilds the positions exactly.
CREATE TABLE position_events (
    event_id     TEXT PRIMARY KEY,
    module_id    BIGINT NOT NULL REFERENCES modules (id),
    kind         TEXT NOT NULL CHECK (kind IN ('funding', 'liquidation')),
    base         TEXT NOT NULL,
    quote        TEXT NOT NULL,
    price        NUMERIC NOT NULL,   -- the mark at funding, the liquidation price
    amount       NUMERIC NOT NULL,   -- funding received (negative: paid); a liquidation's loss
    rate         NUMERIC NOT NULL DEFAULT 0,
    quantity     NUMERIC NOT NULL DEFAULT 0,
    at           TIMESTAMPTZ NOT NULL,
    booking_seq  BIGINT NOT NULL UNIQUE DEFAULT nextval('order_booking_seq'),
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX position_events_module ON position_events (module_id, booking_seq);
