"""Scoring methods, one folder each, behind one interface (`vad.methods.base.Method`);
`vad.methods.registry` lists them and `vad.methods.plan` / `vad.methods.runner` run them as
DVC stages."""
