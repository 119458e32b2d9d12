-- Tenants: every run belongs to the tenant of the API key that created it ('' without keys).
-- Interruptions, events, snapshots and usage belong to their run's tenant.
ALTER TABLE runs ADD COLUMN tenant text NOT NULL DEFAULT '';

-- Idempotency keys are per tenant: one tenant's request_id cannot find another tenant's run.
ALTER TABLE runs DROP CONSTRAINT runs_request_id_key;
ALTER TABLE runs ADD CONSTRAINT runs_tenant_request_id_key UNIQUE (tenant, request_id);

CREATE INDEX runs_by_tenant ON runs (tenant, create_time DESC, id DESC);
