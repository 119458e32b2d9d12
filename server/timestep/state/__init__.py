"""The RunState codec: knows the SDKs' RunState JSON formats, nothing of gRPC or SQL."""
