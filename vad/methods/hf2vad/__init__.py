"""HF2-VAD: Liu, Nie, Long, Zhang, Li, "A Hybrid Video Anomaly Detection Framework via
Memory-Augmented Flow Reconstruction and Flow-Guided Frame Prediction" (ICCV 2021); released code
LiUzHiAn/hf2vad. Networks and losses only (no pipeline stage yet).

memory.py          memory module: softmax addressing, hard shrinkage, read-out, entropy (Sec. 3.1)
memae.py           ML-MemAE-SC, the flow reconstruction network (Sec. 3.1, Fig. 3 (c), Fig. 8)
vunet_blocks.py    weight-normed convolutions, residual blocks, sub-pixel up-sampling, encoders
gaussian.py        diagonal Gaussians: sampling and closed-form KL (eqs. 5-6)
cvae_latents.py    posterior and autoregressive prior at the two deepest levels (App. A)
cvae.py            the flow-guided CVAE predicting x_{t+1} (Sec. 3.2, Fig. 2, Fig. 9)
losses.py          eqs. 1-3 (ML-MemAE-SC) and eqs. 6-8 (CVAE)
initialization.py  seeded weight initialisation as in the released code
presets.py         per-dataset hyper-parameters (Sec. 4.2, released configs) and a CPU preset
"""
