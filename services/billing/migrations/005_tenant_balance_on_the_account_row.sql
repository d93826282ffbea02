-- A tenant's balance kept on its account row (issue 4, performance). Reserve
-- read the balance as the sum of the account's ledger entries, so its cost grew
-- with the tenant's history: a busy tenant books a usage transaction per consumer
-- chunk, hundreds of thousands a day, and every Reserve summed all of them.
-- accounts.balance_micros is maintained by the database itself from the entries
-- (one statement-level trigger, in the same transaction as the entries), so it is
-- still exactly the sum of the entries: entries are append-only, and a BEFORE
-- UPDATE trigger refuses any change of the column that does not come from that
-- trigger (pg_trigger_depth() is 1 for a statement sent by a client).
-- Only tenant accounts carry it: every usage batch credits the system accounts,
-- and a counter there would serialise all tenants' batches on one row; system
-- balances stay sums.
--
-- Existing entries are summed under a SHARE lock on ledger_entries, so no entry
-- committed by a replica still on the old code can slip between the backfill and
-- the trigger.
LOCK TABLE ledger_entries IN SHARE MODE;

ALTER TABLE accounts ADD COLUMN balance_micros bigint NOT NULL DEFAULT 0;

CREATE FUNCTION ledger_entries_apply_to_balances() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- SECURITY DEFINER: the entries already passed their own row-level checks; the
  -- balances of exactly their accounts follow, whatever tenant scope is set.
  UPDATE billing.accounts a
     SET balance_micros = a.balance_micros + d.delta
    FROM (SELECT account_id, sum(amount_micros) AS delta FROM new_entries GROUP BY account_id) d
   WHERE a.id = d.account_id AND a.kind = 'tenant' AND d.delta <> 0;
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_entries_apply_to_balances AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_apply_to_balances();

UPDATE accounts a SET balance_micros = s.total
  FROM (SELECT account_id, sum(amount_micros) AS total FROM ledger_entries GROUP BY account_id) s
 WHERE a.id = s.account_id AND a.kind = 'tenant';

CREATE FUNCTION accounts_balance_is_derived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_trigger_depth() < 2 AND (CASE WHEN TG_OP = 'INSERT' THEN NEW.balance_micros <> 0 ELSE NEW.balance_micros IS DISTINCT FROM OLD.balance_micros END) THEN
    RAISE EXCEPTION 'accounts.balance_micros is derived from ledger_entries: book a ledger transaction instead'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER accounts_balance_is_derived BEFORE INSERT OR UPDATE OF balance_micros ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_balance_is_derived();

-- Reserve's one round trip reads the balance from the locked row.
CREATE OR REPLACE FUNCTION reserve_hold(
  p_tenant text, p_user text, p_key text, p_request text, p_model text, p_input integer, p_max_output integer,
  p_input_price bigint, p_cached_price bigint, p_output_price bigint, p_base_micros bigint, p_ttl_seconds integer, p_price_version bigint)
RETURNS TABLE (outcome text, reservation_id uuid, amount_micros bigint, balance_micros bigint, held_micros bigint, expires_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  account record;
  amount bigint;
  held bigint;
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant, true);
  SELECT a.id, a.markup_bps, a.has_budgets, a.balance_micros INTO account FROM billing.accounts a WHERE a.tenant_id = p_tenant FOR UPDATE;
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
  SELECT coalesce(sum(r.amount_micros), 0) INTO held FROM billing.reservations r WHERE r.tenant_id = p_tenant AND r.status = 'held';
  IF amount > account.balance_micros - held THEN
    RETURN QUERY SELECT 'insufficient'::text, NULL::uuid, amount, account.balance_micros, held, NULL::timestamptz;
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO billing.reservations AS r
      (tenant_id, user_id, api_key_id, request_id, model, input_tokens, max_output_tokens,
       input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at, price_version_id, markup_bps)
    VALUES (p_tenant, p_user, p_key, p_request, p_model, p_input, p_max_output, p_input_price, p_cached_price, p_output_price,
            amount, now() + make_interval(secs => p_ttl_seconds), p_price_version, account.markup_bps)
    RETURNING 'held'::text, r.id, r.amount_micros, account.balance_micros, held, r.expires_at;
END
$$;
