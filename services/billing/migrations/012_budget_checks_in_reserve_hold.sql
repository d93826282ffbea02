-- Budget checks inside Reserve's one round trip (issue 4, performance). A tenant
-- with budgets took the service's full transaction on every Reserve: lock,
-- position, budgets, their periods, holds, insert, commit, about nine round
-- trips (1.9-2.1 ms a call, ~480 calls per second for one tenant, measured
-- with bench/billing/reserve-budget-holds.mjs). With the open holds per user
-- and key on rows of their own (migration 011), the admission rule fits in
-- reserve_hold:
--   every applicable budget (the tenant's, the request's user's, its key's) of
--   the current period is lifted, or is not tripped and has
--   spent + open holds of its scope + this request <= its hard limit.
-- Only admissions are decided here. Anything a budget would refuse answers
-- 'budgets', and the service's full path decides it again under the lock: it
-- writes the refusal's message and, when the budget is exhausted, trips the
-- kill switch with its alert. So the refusal logic stays in one place.
--
-- The period starts come from the caller (the service's UTC periods), so both
-- paths read the same budget_periods rows. Called without them, as a replica
-- still on the previous version does, tenants with budgets answer 'budgets' as
-- before.
DROP FUNCTION reserve_hold(text, text, text, text, text, integer, integer, bigint, bigint, bigint, bigint, integer, bigint);

CREATE FUNCTION reserve_hold(
  p_tenant text, p_user text, p_key text, p_request text, p_model text, p_input integer, p_max_output integer,
  p_input_price bigint, p_cached_price bigint, p_output_price bigint, p_base_micros bigint, p_ttl_seconds integer, p_price_version bigint,
  p_day_start timestamptz DEFAULT NULL, p_month_start timestamptz DEFAULT NULL)
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
  -- @ai-platform/pricing withMarkup: rounded up to the next micro.
  amount := CASE WHEN account.markup_bps = 0 THEN p_base_micros ELSE (p_base_micros * (10000 + account.markup_bps) + 9999) / 10000 END;
  IF amount > account.balance_micros - account.held_micros THEN
    RETURN QUERY SELECT 'insufficient'::text, NULL::uuid, amount, account.balance_micros, account.held_micros, NULL::timestamptz;
    RETURN;
  END IF;
  -- numeric: limits and spend are bigint micros, and their sums and percentages must not overflow.
  IF account.has_budgets AND (p_day_start IS NULL OR p_month_start IS NULL OR EXISTS (
      SELECT 1
        FROM billing.budgets b
        LEFT JOIN billing.budget_periods p ON p.budget_id = b.id AND p.period_start = CASE b.period WHEN 'day' THEN p_day_start ELSE p_month_start END
       WHERE b.tenant_id = p_tenant
         AND (b.scope = 'tenant' OR (b.scope = 'user' AND b.subject = p_user) OR (b.scope = 'api_key' AND b.subject = p_key))
         AND p.lifted_at IS NULL
         AND (p.tripped_at IS NOT NULL
              OR coalesce(p.spent_micros, 0)::numeric
                 + CASE WHEN b.scope = 'tenant' THEN account.held_micros
                        ELSE coalesce((SELECT h.held_micros FROM billing.budget_subject_holds h
                                        WHERE h.tenant_id = p_tenant AND h.scope = b.scope AND h.subject = b.subject), 0) END
                 + amount
                 > div(b.limit_micros::numeric * b.hard_limit_percent, 100)))) THEN
    RETURN QUERY SELECT 'budgets'::text, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::timestamptz;
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
