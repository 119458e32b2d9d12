"""The HTTP transport: Connect and gRPC-Web endpoints for the gRPC services, and the console."""
