"""Generated protobuf and gRPC modules for timestep.v1."""
