"""Webhooks: subscriptions of URLs to run events, Standard Webhooks signatures, destinations that
are safe to connect to, and the client that delivers (the durable delivery loop is
`timestep.durability.webhooks`)."""
