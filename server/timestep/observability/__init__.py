"""Operating the service: structured logs, Prometheus metrics, and the gRPC interceptor that
feeds them (and refuses new RPCs while the service drains)."""
