"""HF2-VAD: Liu, Nie, Long, Zhang, Li, "A Hybrid Video Anomaly Detection Framework via
Memory-Augmented Flow Reconstruction and Flow-Guided Frame Prediction" (ICCV 2021); released code
LiUzHiAn/hf2vad. The method `hf2vad` on the `stc` stage's cubes.

method.py          the Method: settings (params.yaml `hf2vad`), prepare, train, score
prepared.py        the prepared file: the training videos' cubes copied from stc.h5
batches.py         chunk-random minibatches of the training cubes, read as needed
train.py           the three training phases (Sec. 4.2), checkpoints, training errors
errors.py          per-object errors S_r, S_p and their fusion, eq. 9 (Sec. 3.3)
score.py           frame scores (max over objects), score maps, per-frame extras
maps.py            score maps painted from object boxes
model.py           both networks as one model, cube tensors, the model file
memory.py          memory module: softmax addressing, hard shrinkage, read-out, entropy (Sec. 3.1)
memae.py           ML-MemAE-SC, the flow reconstruction network (Sec. 3.1, Fig. 3 (c), Fig. 8)
vunet_blocks.py    weight-normed convolutions, residual blocks, sub-pixel up-sampling, encoders
gaussian.py        diagonal Gaussians: sampling and closed-form KL (eqs. 5-6)
cvae_latents.py    posterior and autoregressive prior at the two deepest levels (App. A)
cvae.py            the flow-guided CVAE predicting x_{t+1} (Sec. 3.2, Fig. 2, Fig. 9)
losses.py          eqs. 1-3 (ML-MemAE-SC) and eqs. 6-8 (CVAE)
initialization.py  seeded weight initialisation as in the released code
presets.py         per-dataset hyper-parameters (Sec. 4.2, released configs), a CPU preset, and
                   params.yaml's overrides
"""
