-- The scheduler's only table: usage events waiting to be relayed to Kafka
-- (`usage.events.v1`). A row is written when a model call ends and deleted once
-- Kafka has acknowledged it, so a crash between the two loses nothing.
-- Same shape as libs/platform's Outbox.ensureTable().
CREATE TABLE IF NOT EXISTS outbox (
  seq bigserial PRIMARY KEY,
  topic text NOT NULL,
  event jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
