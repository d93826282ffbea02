-- Billing, second version: versioned prices and tenant markup, more ledger
-- kinds and expiring credit, budgets with alerts and a kill switch, Stripe
-- (customers, meter reports, top-up orders, webhook events, payments), and
-- an alert webhook delivery queue.

-- Prices ---------------------------------------------------------------------
-- Append-only: a price change is a new version; usage records and holds keep
-- the version (and unit prices) they were computed with.
CREATE TABLE price_versions (
  id                           bigserial PRIMARY KEY,
  model                        text NOT NULL,
  input_micros_per_million     bigint NOT NULL CHECK (input_micros_per_million >= 0),
  cached_input_micros_per_million bigint NOT NULL CHECK (cached_input_micros_per_million >= 0),
  output_micros_per_million    bigint NOT NULL CHECK (output_micros_per_million >= 0),
  tool_call_micros             bigint NOT NULL DEFAULT 0 CHECK (tool_call_micros >= 0),
  embedding_micros_per_million bigint NOT NULL DEFAULT 0 CHECK (embedding_micros_per_million >= 0),
  effective_from               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX price_versions_model ON price_versions (model, id DESC);
CREATE TRIGGER price_versions_append_only BEFORE UPDATE OR DELETE ON price_versions
  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

ALTER TABLE usage_records
  ADD COLUMN price_version_id bigint REFERENCES price_versions (id),
  ADD COLUMN markup_bps integer NOT NULL DEFAULT 0,
  ADD COLUMN tool_calls integer NOT NULL DEFAULT 0 CHECK (tool_calls >= 0),
  ADD COLUMN embedding_tokens integer NOT NULL DEFAULT 0 CHECK (embedding_tokens >= 0);
ALTER TABLE reservations
  ADD COLUMN price_version_id bigint REFERENCES price_versions (id),
  ADD COLUMN markup_bps integer NOT NULL DEFAULT 0;

-- Tenant settings live on the tenant's account row (read under the same lock
-- every money movement takes, so they cost nothing extra on the hot path).
ALTER TABLE accounts
  ADD COLUMN markup_bps integer NOT NULL DEFAULT 0 CHECK (markup_bps BETWEEN 0 AND 100000),
  ADD COLUMN currency text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
  ADD COLUMN has_budgets boolean NOT NULL DEFAULT false,
  ADD COLUMN stripe_customer_id text,
  ADD COLUMN alert_webhook_url text,
  ADD COLUMN alert_webhook_secret text,
  ADD COLUMN auto_topup_threshold_micros bigint,
  ADD COLUMN auto_topup_amount_micros bigint CHECK (auto_topup_amount_micros IS NULL OR auto_topup_amount_micros > 0),
  ADD COLUMN auto_topup_payment_method text;

-- Ledger kinds ---------------------------------------------------------------
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_kind_check CHECK (kind IN (
  'signup_grant', 'grant', 'purchase', 'top_up', 'usage', 'reservation_expiry', 'expiry_adjustment',
  'refund', 'manual_adjustment', 'credit_expiry'));
INSERT INTO accounts (kind, system_code) VALUES ('system', 'purchases'), ('system', 'adjustments'), ('system', 'expired_credit');

-- Expiring credit: a grant with expires_at is a lot; at expiry what is left
-- of it (see CreditExpiry) is booked grants <- tenant as 'credit_expiry'.
CREATE TABLE credit_lots (
  transaction_id uuid PRIMARY KEY,
  tenant_id      text NOT NULL,
  amount_micros  bigint NOT NULL CHECK (amount_micros > 0),
  granted_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  expired_micros bigint,
  expired_at     timestamptz
);
CREATE INDEX credit_lots_due ON credit_lots (expires_at) WHERE expired_at IS NULL;
CREATE INDEX credit_lots_tenant ON credit_lots (tenant_id) WHERE expired_at IS NULL;
ALTER TABLE credit_lots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credit_lots USING (tenant_id = current_setting('app.tenant_id', true));

CREATE FUNCTION due_credit_lots(max_rows integer)
  RETURNS TABLE (transaction_id uuid, tenant_id text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT l.transaction_id, l.tenant_id FROM billing.credit_lots l
   WHERE l.expired_at IS NULL AND l.expires_at <= now() ORDER BY l.expires_at LIMIT max_rows
$$;

-- Budgets --------------------------------------------------------------------
CREATE TABLE budgets (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id          text NOT NULL,
  scope              text NOT NULL CHECK (scope IN ('tenant', 'user', 'api_key')),
  subject            text NOT NULL DEFAULT '',
  period             text NOT NULL CHECK (period IN ('day', 'month')),
  limit_micros       bigint NOT NULL CHECK (limit_micros > 0),
  hard_limit_percent integer NOT NULL DEFAULT 100 CHECK (hard_limit_percent BETWEEN 100 AND 110),
  created_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, scope, subject, period),
  CHECK ((scope = 'tenant') = (subject = ''))
);
ALTER TABLE budgets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON budgets USING (tenant_id = current_setting('app.tenant_id', true));

-- Spend per budget and period (settled charges; holds are added at check time).
CREATE TABLE budget_periods (
  budget_id     uuid NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
  period_start  timestamptz NOT NULL,
  period_end    timestamptz NOT NULL,
  tenant_id     text NOT NULL,
  spent_micros  bigint NOT NULL DEFAULT 0,
  alerted_70    boolean NOT NULL DEFAULT false,
  alerted_90    boolean NOT NULL DEFAULT false,
  tripped_at    timestamptz,
  lifted_at     timestamptz,
  PRIMARY KEY (budget_id, period_start)
);
ALTER TABLE budget_periods ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON budget_periods USING (tenant_id = current_setting('app.tenant_id', true));

-- Kill switches that are on now, for the Redis reconciler (all tenants).
CREATE FUNCTION active_kill_switches()
  RETURNS TABLE (tenant_id text, scope text, subject text, period_end timestamptz)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT b.tenant_id, b.scope, b.subject, p.period_end FROM billing.budget_periods p JOIN billing.budgets b ON b.id = p.budget_id
   WHERE p.tripped_at IS NOT NULL AND p.lifted_at IS NULL AND p.period_end > now()
$$;

-- Alert webhooks (Standard Webhooks), queued in the transaction that decided
-- to alert and delivered with retries.
CREATE TABLE webhook_deliveries (
  id              text PRIMARY KEY,
  tenant_id       text NOT NULL,
  url             text NOT NULL,
  secret          text NOT NULL,
  body            text NOT NULL,
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  delivered_at    timestamptz,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE delivered_at IS NULL;

-- Stripe ---------------------------------------------------------------------
-- Usage to report, aggregated per tenant per consumer batch, drained into meter reports.
CREATE TABLE meter_pending (
  id           bigserial PRIMARY KEY,
  tenant_id    text NOT NULL,
  value_micros bigint NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
-- One Stripe Billing Meter event each; id is the meter event's `identifier`,
-- so a retried report is deduplicated by Stripe.
CREATE TABLE meter_reports (
  id              text PRIMARY KEY,
  tenant_id       text NOT NULL,
  value_micros    bigint NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz
);
CREATE INDEX meter_reports_due ON meter_reports (next_attempt_at) WHERE status = 'pending';

CREATE TABLE top_up_orders (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      text NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('checkout', 'auto_topup')),
  credits_micros bigint NOT NULL CHECK (credits_micros > 0),
  amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
  currency       text NOT NULL,
  stripe_id      text UNIQUE,
  status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'open', 'paid', 'failed', 'rejected')),
  reason         text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX top_up_orders_one_auto_pending ON top_up_orders (tenant_id) WHERE kind = 'auto_topup' AND status IN ('pending', 'open');

CREATE TABLE stripe_events (
  event_id    text PRIMARY KEY,
  type        text NOT NULL,
  outcome     text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
