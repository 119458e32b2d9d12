"""The gRPC transport: one generic adapter serving every handler of `timestep.api.handlers`
(`servicers.py`), the rendering of error descriptions as gRPC statuses (`status.py`) and the
server itself (`server.py`)."""
