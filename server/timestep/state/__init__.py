"""The RunState codec: knows the SDKs' RunState JSON formats, nothing of gRPC or SQL.

- `document`: `StateDocument`, RunState JSON parsed once (which SDK wrote it, its schema
  version), and the one table of the SDK releases and schema versions the codec knows.
- `codec`: `convert` a document between the formats; the decisions a state records.
- `python_to_typescript`, `typescript_to_python`: the two conversions, each with its mapping.
- `items`: conversation items and usage in each SDK's form.
- `fingerprints`: the tool-invocation identities each SDK binds its approval decisions to.
- `errors`: what the codec refuses (`StateCodecError`); callers choose the status.
- `unsupported`: how a conversion refuses what it does not support.
"""
