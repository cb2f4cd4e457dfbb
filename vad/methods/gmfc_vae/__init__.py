"""GMFC-VAE: Fan et al., "Video Anomaly Detection and Localization via Gaussian Mixture Fully
Convolutional Variational Autoencoder" (arXiv 1805.11223, CVIU 2020).

model.py   the Table I network with its mixture prior, eq. 14 loss and eq. 17 sample energy
patches.py training patches (stride 7, moving pixels only) and the 15x10 test grid
train.py   AE pre-training, GMM initialisation, VaDE training (Sec. IV-C)
score.py   eq. 17 energies of every test patch, the static-patch rule
method.py  the two streams (`gmfc_vae_rgb`, `gmfc_vae_dynflow`) behind vad.methods.base.Method
"""
