"""`vad diagnose`: measurements that explain a method's results, written under
reports/diagnostics/ (not a DVC stage: run by hand after `dvc repro`).

patch_labels.py  ground-truth masks -> per-patch coverage and anomalous/normal/ambiguous classes
ranking.py       the ROC AUC of two score samples (scikit-learn)
gmfc_vae.py      GMFC-VAE: patch-level AUCs of sample energy, reconstruction error and negative
                 ELBO per stream on the scoring grid
figures.py       energy histograms and the extreme-energy patches
command.py       the command-line arguments
"""
