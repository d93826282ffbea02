-- Reserve in one round trip (issue 4, performance). Same semantics as the
-- transaction in ReservationService.reserve: set the tenant scope, lock the
-- tenant's account row, read balance and open holds after the lock, refuse when
-- the worst case (with the tenant's markup) exceeds balance - held, else insert
-- the hold. Called as one autocommit statement, so the lock is held only for the
-- duration of this function. Returns outcome:
--   'held'          the hold was inserted (reservation_id, expires_at)
--   'insufficient'  refused; amount/balance/held say why; nothing written
--   'no_account'    the tenant has no account yet   } the caller takes the full
--   'budgets'       the tenant has budgets to check } transaction path instead
-- SECURITY INVOKER: row-level security applies as for the service's own queries.
CREATE FUNCTION reserve_hold(
  p_tenant text, p_user text, p_key text, p_request text, p_model text, p_input integer, p_max_output integer,
  p_input_price bigint, p_cached_price bigint, p_output_price bigint, p_base_micros bigint, p_ttl_seconds integer, p_price_version bigint)
RETURNS TABLE (outcome text, reservation_id uuid, amount_micros bigint, balance_micros bigint, held_micros bigint, expires_at timestamptz)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
  account record;
  amount bigint;
  balance bigint;
  held bigint;
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant, true);
  SELECT a.id, a.markup_bps, a.has_budgets INTO account FROM billing.accounts a WHERE a.tenant_id = p_tenant FOR UPDATE;
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
  SELECT coalesce(sum(e.amount_micros), 0) INTO balance FROM billing.ledger_entries e WHERE e.account_id = account.id;
  SELECT coalesce(sum(r.amount_micros), 0) INTO held FROM billing.reservations r WHERE r.tenant_id = p_tenant AND r.status = 'held';
  IF amount > balance - held THEN
    RETURN QUERY SELECT 'insufficient'::text, NULL::uuid, amount, balance, held, NULL::timestamptz;
    RETURN;
  END IF;
  RETURN QUERY
    INSERT INTO billing.reservations AS r
      (tenant_id, user_id, api_key_id, request_id, model, input_tokens, max_output_tokens,
       input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at, price_version_id, markup_bps)
    VALUES (p_tenant, p_user, p_key, p_request, p_model, p_input, p_max_output, p_input_price, p_cached_price, p_output_price,
            amount, now() + make_interval(secs => p_ttl_seconds), p_price_version, account.markup_bps)
    RETURNING 'held'::text, r.id, r.amount_micros, balance, held, r.expires_at;
END
$$;
