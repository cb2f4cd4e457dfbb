"""Validation of params.yaml, one module per section a preprocessing or evaluation stage reads.

Each stage calls its section's function before any work, so a bad value fails at once with a
`ConfigError` naming the key (`params.yaml: 'evaluate.window' ...`), before an output is
written; `python -m vad check-params` (vad.params.check) calls all of them, and every enabled
method's `settings`, and reports every error at once. The modules import only what their stage
imports anyway: a stage depends on its own section's checks, not on the others'.
"""
