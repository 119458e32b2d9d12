"""The gRPC API layer: servicers translate proto ⇄ domain, validate input and map errors to status codes."""
