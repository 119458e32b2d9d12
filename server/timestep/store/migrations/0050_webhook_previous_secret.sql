-- Rotation with an overlap (RotateWebhookSecret.previous_secret_ttl): the secret a rotation
-- replaced, kept beside the current one (and like it, nowhere else) until its expiry, while
-- deliveries are signed with both. Once expired it is never used to sign, and it is erased (at
-- the next rotation, or by the webhook dispatcher's rounds).
ALTER TABLE webhooks
    ADD COLUMN previous_secret             text,
    ADD COLUMN previous_secret_expire_time timestamptz,
    ADD CONSTRAINT webhooks_previous_secret_expires
        CHECK ((previous_secret IS NULL) = (previous_secret_expire_time IS NULL));
CREATE INDEX webhooks_previous_secret_expiry ON webhooks (previous_secret_expire_time)
    WHERE previous_secret IS NOT NULL;
