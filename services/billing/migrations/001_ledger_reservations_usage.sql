-- Billing schema, first version: accounts, a double-entry credit ledger,
-- reservations (hold then settle) and usage records.
--
-- Money is integer micro-credits (bigint) everywhere; 1 credit = 1,000,000 micros.
-- Runs with search_path = billing, public (see libs/platform migrate()); names
-- inside function bodies are schema-qualified because they run with the
-- caller's search_path.

-- Accounts -------------------------------------------------------------------
-- One account per tenant (kind 'tenant'), plus system accounts (kind 'system')
-- that are the other side of every tenant movement: 'grants' funds sign-up and
-- promotional credit, 'revenue' receives usage charges, 'top_ups' will fund
-- paid credit (Stripe). The balance of an account is the sum of its ledger
-- entries; a tenant's positive balance is credit it can spend.
CREATE TABLE accounts (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind        text NOT NULL CHECK (kind IN ('tenant', 'system')),
  tenant_id   text UNIQUE,
  system_code text UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_owner CHECK (
    (kind = 'tenant' AND tenant_id IS NOT NULL AND system_code IS NULL) OR
    (kind = 'system' AND system_code IS NOT NULL AND tenant_id IS NULL)),
  CONSTRAINT accounts_tenant_id_length CHECK (tenant_id IS NULL OR length(tenant_id) BETWEEN 1 AND 256)
);

INSERT INTO accounts (kind, system_code) VALUES ('system', 'grants'), ('system', 'revenue'), ('system', 'top_ups');

-- Ledger ---------------------------------------------------------------------
-- Append-only double entry. Every transaction concerns exactly one tenant
-- (also its system-account side, so the row is covered by that tenant's
-- row-level security) and its entries sum to zero, checked at commit.
-- (kind, reference) is unique: the same business fact (a grant for a tenant,
-- a usage event, the expiry of a reservation) can be booked only once.
CREATE TABLE ledger_transactions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id   text NOT NULL,
  kind        text NOT NULL CHECK (kind IN (
                'signup_grant',       -- grants -> tenant, once per tenant
                'usage',              -- tenant -> revenue, actual cost of a usage event
                'reservation_expiry', -- tenant -> revenue, full hold of a reservation whose usage never arrived in time
                'expiry_adjustment',  -- revenue <-> tenant, late usage corrects an expiry charge to the actual cost
                'top_up',             -- top_ups -> tenant (Stripe, later)
                'manual_adjustment')),-- operator correction (later)
  reference   text NOT NULL,
  description text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, reference),
  UNIQUE (id, tenant_id)
);
CREATE INDEX ledger_transactions_tenant_created ON ledger_transactions (tenant_id, created_at);

CREATE TABLE ledger_entries (
  id             bigserial PRIMARY KEY,
  transaction_id uuid NOT NULL,
  tenant_id      text NOT NULL,
  account_id     uuid NOT NULL REFERENCES accounts (id),
  amount_micros  bigint NOT NULL CHECK (amount_micros <> 0),
  created_at     timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (transaction_id, tenant_id) REFERENCES ledger_transactions (id, tenant_id)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id) INCLUDE (amount_micros);
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id);

-- A transaction must have at least two entries that sum to zero when the
-- database transaction that wrote it commits.
CREATE FUNCTION ledger_assert_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  txn uuid;
  total numeric;
  entries integer;
BEGIN
  IF TG_TABLE_NAME = 'ledger_transactions' THEN
    txn := NEW.id;
  ELSE
    txn := NEW.transaction_id;
  END IF;
  SELECT coalesce(sum(amount_micros), 0), count(*) INTO total, entries
    FROM billing.ledger_entries WHERE transaction_id = txn;
  IF entries < 2 OR total <> 0 THEN
    RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries summing to %', txn, entries, total
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER ledger_transactions_balanced AFTER INSERT ON ledger_transactions
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_assert_balanced();
CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_assert_balanced();

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'billing.% is append-only: book a correcting transaction instead', TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Reservations ---------------------------------------------------------------
-- A hold of the worst-case cost of one request. Open holds ('held') reduce
-- what a tenant can reserve next. settled_micros is what the tenant has been
-- charged in respect of the reservation so far (usage charges, or the full
-- hold at expiry corrected by late usage).
CREATE TABLE reservations (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id                   text NOT NULL,
  user_id                     text NOT NULL DEFAULT '',
  api_key_id                  text NOT NULL DEFAULT '',
  request_id                  text NOT NULL DEFAULT '',
  model                       text NOT NULL,
  input_tokens                integer NOT NULL CHECK (input_tokens >= 0),
  max_output_tokens           integer NOT NULL CHECK (max_output_tokens >= 0),
  -- Unit prices the hold was computed with (micros per million tokens).
  input_price_micros          bigint NOT NULL,
  cached_input_price_micros   bigint NOT NULL,
  output_price_micros         bigint NOT NULL,
  amount_micros               bigint NOT NULL CHECK (amount_micros >= 0),
  status                      text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'settled', 'released', 'expired')),
  settled_micros              bigint NOT NULL DEFAULT 0,
  release_reason              text,
  expires_at                  timestamptz NOT NULL,
  created_at                  timestamptz NOT NULL DEFAULT now(),
  updated_at                  timestamptz NOT NULL DEFAULT now(),
  closed_at                   timestamptz,
  CONSTRAINT reservations_closed CHECK ((status = 'held') = (closed_at IS NULL))
);
CREATE INDEX reservations_open_by_tenant ON reservations (tenant_id) INCLUDE (amount_micros) WHERE status = 'held';
CREATE INDEX reservations_open_by_expiry ON reservations (expires_at) WHERE status = 'held';
CREATE INDEX reservations_tenant_created ON reservations (tenant_id, created_at);

-- Usage records --------------------------------------------------------------
-- One row per usage event (event_id unique), whatever the reservation's state.
-- cost_micros is recomputed from the price table; the producer's figure is
-- kept in reported_cost_micros for reconciliation only.
CREATE TABLE usage_records (
  id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  event_id                    text NOT NULL UNIQUE,
  tenant_id                   text NOT NULL,
  user_id                     text NOT NULL DEFAULT '',
  api_key_id                  text NOT NULL DEFAULT '',
  request_id                  text NOT NULL DEFAULT '',
  conversation_id             text NOT NULL DEFAULT '',
  reservation_id              uuid REFERENCES reservations (id),
  -- The reservation id as the event carried it, also when it matched nothing.
  reservation_ref             text NOT NULL DEFAULT '',
  model                       text NOT NULL,
  engine_id                   text NOT NULL DEFAULT '',
  priority                    text NOT NULL DEFAULT '',
  input_tokens                integer NOT NULL CHECK (input_tokens >= 0),
  cached_input_tokens         integer NOT NULL CHECK (cached_input_tokens >= 0 AND cached_input_tokens <= input_tokens),
  output_tokens               integer NOT NULL CHECK (output_tokens >= 0),
  input_price_micros          bigint NOT NULL,
  cached_input_price_micros   bigint NOT NULL,
  output_price_micros         bigint NOT NULL,
  cost_micros                 bigint NOT NULL CHECK (cost_micros >= 0),
  reported_cost_micros        bigint NOT NULL DEFAULT 0,
  -- What this event moved on the tenant's balance (negative = charged,
  -- positive = refunded by an expiry adjustment); 0 when nothing moved.
  balance_change_micros       bigint NOT NULL DEFAULT 0,
  ledger_transaction_id       uuid,
  status                      text NOT NULL CHECK (status IN ('completed', 'aborted', 'failed', 'unspecified')),
  occurred_at                 timestamptz NOT NULL,
  started_at                  timestamptz,
  finished_at                 timestamptz,
  recorded_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_records_tenant_occurred ON usage_records (tenant_id, occurred_at);
CREATE INDEX usage_records_reservation ON usage_records (reservation_id) WHERE reservation_id IS NOT NULL;

-- Row-level security ---------------------------------------------------------
-- Every transaction of the service sets app.tenant_id (SET LOCAL through
-- set_config(..., true)); a query that forgets its tenant filter still sees
-- only that tenant's rows. Superusers and the tables' owner bypass these
-- policies; they bind the non-owner role the service runs as in production.
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON accounts
  USING (tenant_id IS NULL OR tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE ledger_transactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ledger_transactions
  USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE ledger_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ledger_entries
  USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE reservations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON reservations
  USING (tenant_id = current_setting('app.tenant_id', true));

ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_records
  USING (tenant_id = current_setting('app.tenant_id', true));

-- The two cross-tenant lookups the service needs, as narrow SECURITY DEFINER
-- functions (they run as the schema owner): which held reservations are due to
-- expire, and which tenant a reservation id belongs to (Release carries no
-- tenant). Everything after the lookup runs in that tenant's RLS scope.
CREATE FUNCTION due_reservations(max_rows integer)
  RETURNS TABLE (id uuid, tenant_id text)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT r.id, r.tenant_id FROM billing.reservations r
   WHERE r.status = 'held' AND r.expires_at <= now()
   ORDER BY r.expires_at
   LIMIT max_rows
$$;

CREATE FUNCTION reservation_tenant(reservation uuid)
  RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT r.tenant_id FROM billing.reservations r WHERE r.id = reservation
$$;
