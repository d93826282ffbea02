-- Rate-limit tier and per-tenant overrides (JSON of the same shape as RATE_LIMIT_TIERS entries).
ALTER TABLE tenants ADD COLUMN tier text NOT NULL DEFAULT 'default';
ALTER TABLE tenants ADD COLUMN limits jsonb;

-- One webhook endpoint per row; the secret signs deliveries (Standard Webhooks, whsec_ + base64).
CREATE TABLE webhooks (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id),
  url text NOT NULL,
  secret text NOT NULL,
  events text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant_idx ON webhooks (tenant_id);

-- Deliveries that failed every retry; readable and replayable by their tenant.
CREATE TABLE webhook_dead_letters (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id),
  webhook_id text NOT NULL,
  event_id text NOT NULL,
  event_type text NOT NULL,
  payload jsonb NOT NULL,
  attempts integer NOT NULL,
  last_error text NOT NULL,
  replayed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_dead_letters_tenant_idx ON webhook_dead_letters (tenant_id, created_at DESC);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_dead_letters ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenant_isolation ON webhook_dead_letters USING (tenant_id = current_setting('app.tenant_id', true));
