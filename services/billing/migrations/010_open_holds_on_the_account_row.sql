-- A tenant's open holds kept on its account row (issue 4, performance). Reserve
-- summed the tenant's held reservations under the account lock, so its cost grew
-- with the requests the tenant had in flight: measured with
-- bench/billing/reserve-open-holds.mjs, one Reserve took 0.66 ms with no open
-- holds, 1.5 ms with 10,000 and 7.1 ms with 50,000, and one tenant's Reserves
-- (serialised on its row) fell from ~1,500 to ~100 per second.
-- accounts.held_micros is maintained by the database itself from the
-- reservations (triggers, in the same transaction as the change of the
-- reservation), so it is exactly the sum of amount_micros over the
-- tenant's reservations in status 'held'. Like balance_micros it cannot be
-- written by a client statement, and it cannot go negative.
-- Every writer of reservations already locks the tenant's account row first
-- (Reserve, settlement, expiry; Release does so from this version on), so the
-- triggers' update takes no lock that a concurrent transaction could hold in
-- the other order.
--
-- Existing holds are summed under a SHARE lock on reservations, so no hold taken
-- by a replica still on the old code can slip between the backfill and the
-- triggers.
LOCK TABLE reservations IN SHARE MODE;

ALTER TABLE accounts ADD COLUMN held_micros bigint NOT NULL DEFAULT 0 CHECK (held_micros >= 0);

UPDATE accounts a SET held_micros = s.total
  FROM (SELECT tenant_id, sum(amount_micros) AS total FROM reservations WHERE status = 'held' GROUP BY tenant_id) s
 WHERE a.tenant_id = s.tenant_id AND a.kind = 'tenant' AND s.total <> 0;

-- Adds each tenant's change of open holds to its account row. A hold whose
-- tenant has no account is refused: Reserve always creates the account first.
CREATE FUNCTION apply_hold_deltas(p_tenants text[], p_deltas bigint[]) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  updated integer;
BEGIN
  IF p_tenants IS NULL THEN
    RETURN;
  END IF;
  -- SECURITY DEFINER: the reservations already passed their own row-level
  -- checks; the holds of exactly their tenants follow, whatever scope is set.
  UPDATE billing.accounts a
     SET held_micros = a.held_micros + d.delta
    FROM unnest(p_tenants, p_deltas) AS d(tenant_id, delta)
   WHERE a.tenant_id = d.tenant_id AND a.kind = 'tenant';
  GET DIAGNOSTICS updated = ROW_COUNT;
  IF updated <> cardinality(p_tenants) THEN
    RAISE EXCEPTION 'a held reservation needs its tenant''s account (% of % tenants have one)', updated, cardinality(p_tenants)
      USING ERRCODE = 'foreign_key_violation';
  END IF;
END
$$;

-- Reserve inserts one hold per statement, so inserts take a row-level trigger: one
-- UPDATE of the account row, without the transition table and aggregation of the
-- statement-level triggers below (which batches of settlements need: one update per
-- tenant per statement, not one per reservation). Every name is schema-qualified, so
-- the function needs no search_path of its own (setting one costs a GUC save and
-- restore on every call, on the hottest statement of the platform).
CREATE FUNCTION reservations_apply_inserted_hold() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
  UPDATE billing.accounts SET held_micros = held_micros + NEW.amount_micros WHERE tenant_id = NEW.tenant_id AND kind = 'tenant';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'a held reservation needs its tenant''s account (tenant %)', NEW.tenant_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION reservations_apply_updated_holds() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tenants text[];
  deltas bigint[];
BEGIN
  SELECT array_agg(tenant_id ORDER BY tenant_id), array_agg(delta ORDER BY tenant_id) INTO tenants, deltas
    FROM (SELECT tenant_id, sum(amount) AS delta
            FROM (SELECT tenant_id, amount_micros AS amount FROM new_rows WHERE status = 'held'
                  UNION ALL
                  SELECT tenant_id, -amount_micros FROM old_rows WHERE status = 'held') changes
           GROUP BY tenant_id) d
   WHERE delta <> 0;
  PERFORM billing.apply_hold_deltas(tenants, deltas);
  RETURN NULL;
END
$$;

CREATE FUNCTION reservations_apply_deleted_holds() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tenants text[];
  deltas bigint[];
BEGIN
  SELECT array_agg(tenant_id ORDER BY tenant_id), array_agg(delta ORDER BY tenant_id) INTO tenants, deltas
    FROM (SELECT tenant_id, -sum(amount_micros) AS delta FROM old_rows WHERE status = 'held' GROUP BY tenant_id) d
   WHERE delta <> 0;
  PERFORM billing.apply_hold_deltas(tenants, deltas);
  RETURN NULL;
END
$$;

CREATE TRIGGER reservations_apply_inserted_hold AFTER INSERT ON reservations
  FOR EACH ROW WHEN (NEW.status = 'held' AND NEW.amount_micros <> 0) EXECUTE FUNCTION reservations_apply_inserted_hold();
CREATE TRIGGER reservations_apply_updated_holds AFTER UPDATE ON reservations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION reservations_apply_updated_holds();
CREATE TRIGGER reservations_apply_deleted_holds AFTER DELETE ON reservations REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION reservations_apply_deleted_holds();

-- A client statement cannot set held_micros; only the triggers above do (depth 1 or more).
CREATE FUNCTION accounts_holds_are_derived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'accounts.held_micros is derived from reservations: take, settle or release a reservation instead'
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER accounts_holds_are_derived_on_insert BEFORE INSERT ON accounts
  FOR EACH ROW WHEN (NEW.held_micros <> 0) EXECUTE FUNCTION accounts_holds_are_derived();
CREATE TRIGGER accounts_holds_are_derived BEFORE UPDATE OF held_micros ON accounts
  FOR EACH ROW WHEN (pg_trigger_depth() < 1 AND NEW.held_micros IS DISTINCT FROM OLD.held_micros)
  EXECUTE FUNCTION accounts_holds_are_derived();

-- Reserve's one round trip reads the open holds from the locked row.
CREATE OR REPLACE FUNCTION reserve_hold(
  p_tenant text, p_user text, p_key text, p_request text, p_model text, p_input integer, p_max_output integer,
  p_input_price bigint, p_cached_price bigint, p_output_price bigint, p_base_micros bigint, p_ttl_seconds integer, p_price_version bigint)
RETURNS TABLE (outcome text, reservation_id uuid, amount_micros bigint, balance_micros bigint, held_micros bigint, expires_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  account record;
  amount bigint;
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant, true);
  SELECT a.id, a.markup_bps, a.has_budgets, a.balance_micros, a.held_micros INTO account FROM billing.accounts a WHERE a.tenant_id = p_tenant FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_account'::text, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz;
    RETURN;
  END IF;
  IF account.has_budgets THEN
    RETURN QUERY SELECT 'budgets'::text, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz;
    RETURN;
  END IF;
  -- @ai-platform/pricing withMarkup: rounded up to the next micro.
  amount := CASE WHEN account.markup_bps = 0 THEN p_base_micros ELSE (p_base_micros * (10000 + account.markup_bps) + 9999) / 10000 END;
  IF amount > account.balance_micros - account.held_micros THEN
    RETURN QUERY SELECT 'insufficient'::text, NULL::uuid, amount, account.balance_micros, account.held_micros, NULL::timestamptz;
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO billing.reservations AS r
      (tenant_id, user_id, api_key_id, request_id, model, input_tokens, max_output_tokens,
       input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at, price_version_id, markup_bps)
    VALUES (p_tenant, p_user, p_key, p_request, p_model, p_input, p_max_output, p_input_price, p_cached_price, p_output_price,
            amount, now() + make_interval(secs => p_ttl_seconds), p_price_version, account.markup_bps)
    RETURNING 'held'::text, r.id, r.amount_micros, account.balance_micros, account.held_micros, r.expires_at;
END
$$;
