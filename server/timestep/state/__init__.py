"""The RunState codec: knows the SDKs' RunState JSON formats, nothing of gRPC or SQL.

- `codec`: which SDK wrote a RunState and its schema version; `convert` between the formats.
- `python_to_typescript`, `typescript_to_python`: the two conversions, each with its mapping.
- `items`: conversation items and usage in each SDK's form.
- `fingerprints`: the tool-invocation identities each SDK binds its approval decisions to.
- `unsupported`: how a conversion refuses what it does not support.
"""
