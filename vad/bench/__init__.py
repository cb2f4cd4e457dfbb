"""Benchmarks behind `vad bench` (no DVC stage depends on them, so editing one re-runs nothing).

`motion`: the preprocessing throughput report; `flow_timing`: flow methods' pair rates and the
parallel flow stage against a sequential loop; `rank_svm`: exact RankSVM against scikit-learn.
"""
