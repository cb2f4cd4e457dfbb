"""GMFC-VAE: Gaussian Mixture Fully Convolutional Variational Autoencoder.

Fan, Wen, Li, Qiu, Levine, "Video Anomaly Detection and Localization via Gaussian Mixture Fully
Convolutional Variational Autoencoder" (arXiv 1805.11223, CVIU 2020). The training objective is
the VaDE evidence lower bound (Jiang et al., IJCAI 2017) and the anomaly score is the DAGMM
sample energy (Zong et al., ICLR 2018).

Generative model (eqs. 5-9), c = 1..K, z in R^J (J = 64):
    c ~ Cat(pi)                                   (5)
    z | c ~ N(mu_c, diag sigma_c^2)               (6, 7)
    [x_mu, log sigma_x^2] = f(z; theta)           (8)  the decoder D8-D11
    x | z ~ N(x_mu, sigma_x^2 I)                  (9)  sigma_x^2 fixed: `recon_variance`
Inference model (eqs. 10-11): [mu~, log sigma~^2] = g(x; phi), the encoder C1-C4 + F5/F6,
q(z|x) = N(mu~, diag sigma~^2), and q(c|x) ~= p(c|z) (eq. 15).

Layer sizes follow Table I (C1-C4: 64, 128, 256, 64 channels; Sec. IV-C's prose says 32, 64,
128, 256 instead, the table is used). Table I prints stride/pad values with which its kernels
cannot produce its output sizes; the paddings below are the ones that do (`TABLE_I_PADDINGS`).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor, nn

LOG_VAR_MIN = -12.0  # clamp of every log-variance (encoder and prior): sigma in [2.5e-3, 403]
LOG_VAR_MAX = 12.0
LOG_2PI = math.log(2.0 * math.pi)

# Table I as used here: name -> (kernel, stride, padding, output_padding) of each layer.
# Table I prints pad 0 for C1, C2, D10, D11; those pads cannot give 14, 7, 14, 28.
TABLE_I_PADDINGS = {
    "C1": (3, 2, 1, 0),  # 3x28x28 -> 64x14x14
    "C2": (3, 2, 1, 0),  # 64x14x14 -> 128x7x7
    "C3": (3, 2, 1, 0),  # 128x7x7 -> 256x4x4
    "C4": (4, 1, 0, 0),  # 256x4x4 -> 64x1x1
    "D8": (4, 1, 0, 0),  # 64x1x1 -> 256x4x4
    "D9": (3, 2, 1, 0),  # 256x4x4 -> 128x7x7
    "D10": (3, 2, 1, 1),  # 128x7x7 -> 64x14x14
    "D11": (3, 2, 1, 1),  # 64x14x14 -> 3x28x28
}


def _conv(name: str, c_in: int, c_out: int) -> nn.Conv2d:
    kernel, stride, pad, _ = TABLE_I_PADDINGS[name]
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad)


def _deconv(name: str, c_in: int, c_out: int) -> nn.ConvTranspose2d:
    kernel, stride, pad, out_pad = TABLE_I_PADDINGS[name]
    return nn.ConvTranspose2d(
        c_in, c_out, kernel, stride=stride, padding=pad, output_padding=out_pad
    )


class GMFCVAE(nn.Module):
    """Table I encoder/decoder with a learned K-component diagonal Gaussian-mixture prior."""

    def __init__(
        self,
        n_components: int = 20,
        latent_dim: int = 64,
        in_channels: int = 3,
        recon_variance: float = 0.5,
    ) -> None:
        super().__init__()
        if n_components < 1 or latent_dim < 1 or in_channels < 1 or recon_variance <= 0:
            raise ValueError(
                "GMFCVAE needs n_components, latent_dim, in_channels >= 1 and recon_variance > 0"
            )
        self.n_components = n_components
        self.latent_dim = latent_dim
        self.in_channels = in_channels
        self.recon_variance = float(recon_variance)  # sigma_x^2 of eq. 9

        # Encoder g(x; phi), eq. 10 / Table I: every convolution is followed by a ReLU (IV-C).
        self.encoder = nn.Sequential(
            OrderedDict(
                C1=nn.Sequential(_conv("C1", in_channels, 64), nn.ReLU()),
                C2=nn.Sequential(_conv("C2", 64, 128), nn.ReLU()),
                C3=nn.Sequential(_conv("C3", 128, 256), nn.ReLU()),
                C4=nn.Sequential(_conv("C4", 256, 64), nn.ReLU()),
            )
        )
        # F5 / F6: the two parallel "fully connected" heads, 1x1 convolutions on the 64x1 feature.
        self.f5_mean = nn.Conv2d(64, latent_dim, 1)  # mu~
        self.f6_log_var = nn.Conv2d(64, latent_dim, 1)  # log sigma~^2
        # Decoder f(z; theta), eq. 8 / Table I: the reverse of the encoder; sigmoid output
        # because patches are scaled to [0, 1] (IV-A).
        self.decoder = nn.Sequential(
            OrderedDict(
                D8=nn.Sequential(_deconv("D8", latent_dim, 256), nn.ReLU()),
                D9=nn.Sequential(_deconv("D9", 256, 128), nn.ReLU()),
                D10=nn.Sequential(_deconv("D10", 128, 64), nn.ReLU()),
                D11=nn.Sequential(_deconv("D11", 64, in_channels), nn.Sigmoid()),
            )
        )
        # Mixture prior, eqs. 5-7: pi = softmax(logits) stays on the simplex.
        self.pi_logits = nn.Parameter(torch.zeros(n_components))
        self.mu_c = nn.Parameter(torch.randn(n_components, latent_dim))
        self.log_var_c = nn.Parameter(torch.zeros(n_components, latent_dim))
        self._init_weights()

    def _init_weights(self) -> None:
        """He-normal for the layers followed by a ReLU, Glorot-uniform for F5, F6 and D11
        (the paper does not say; PyTorch's default scale shrinks activations ~3x per layer)."""
        relu_layers = [block[0] for block in [*self.encoder, *self.decoder[:-1]]]
        linear_layers = [self.f5_mean, self.f6_log_var, self.decoder.D11[0]]
        for layer in relu_layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        for layer in linear_layers:
            nn.init.xavier_uniform_(layer.weight)
        for layer in relu_layers + linear_layers:
            nn.init.zeros_(layer.bias)

    # ---- architecture bookkeeping -------------------------------------------------------------

    @property
    def config(self) -> dict:
        """The constructor arguments; stored with the weights by `vad.train.save_model`."""
        return {
            "n_components": self.n_components,
            "latent_dim": self.latent_dim,
            "in_channels": self.in_channels,
            "recon_variance": self.recon_variance,
        }

    def network_parameters(self) -> list[nn.Parameter]:
        """Encoder, heads and decoder weights (what pre-training and weight decay touch)."""
        prior = {id(p) for p in self.prior_parameters()}
        return [p for p in self.parameters() if id(p) not in prior]

    def prior_parameters(self) -> list[nn.Parameter]:
        """pi logits, mu_c, log sigma_c^2."""
        return [self.pi_logits, self.mu_c, self.log_var_c]

    # ---- encoder, sampling layer, decoder (eqs. 8, 10, 11; Table I) --------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (N, C, 28, 28) in [0, 1] -> mu~ (N, J), log sigma~^2 (N, J) (eq. 10)."""
        h = self.encoder(x)
        mean = self.f5_mean(h).flatten(1)
        log_var = self.f6_log_var(h).flatten(1).clamp(LOG_VAR_MIN, LOG_VAR_MAX)
        return mean, log_var

    def encode_mean(self, x: Tensor) -> Tensor:
        """The encoder mean mu~, the test-time latent (Sec. III-C: z = mu~)."""
        return self.f5_mean(self.encoder(x)).flatten(1)

    @staticmethod
    def reparameterize(mean: Tensor, log_var: Tensor, eps: Tensor) -> Tensor:
        """S7: z = mu~ + sigma~ * eps, eps ~ N(0, I) (SGVB); eps may carry leading sample dims."""
        return mean + torch.exp(0.5 * log_var) * eps

    def decode(self, z: Tensor) -> Tensor:
        """z (..., J) -> x_mu (..., C, 28, 28) in (0, 1) (eq. 8)."""
        lead = z.shape[:-1]
        x_mean = self.decoder(z.reshape(-1, self.latent_dim, 1, 1))
        return x_mean.reshape(*lead, *x_mean.shape[1:])

    def reconstruction_nll(self, x: Tensor, x_mean: Tensor) -> Tensor:
        """-log p(x|z) under eq. 9 with fixed sigma_x^2, summed over pixels: shape x_mean[:-3]."""
        squared_error = (x - x_mean).pow(2).flatten(-3).sum(-1)
        n_pixels = math.prod(x.shape[-3:])  # C * H * W, also for an empty batch
        return 0.5 * squared_error / self.recon_variance + 0.5 * n_pixels * (
            LOG_2PI + math.log(self.recon_variance)
        )

    # ---- mixture prior (eqs. 5-7, 15-17) -----------------------------------------------------

    def log_pi(self) -> Tensor:
        """log pi_c, (K,)."""
        return torch.log_softmax(self.pi_logits, dim=0)

    def mixture_weights(self) -> Tensor:
        """pi_c, (K,), on the simplex."""
        return torch.softmax(self.pi_logits, dim=0)

    def prior_log_var(self) -> Tensor:
        """log sigma_c^2, (K, J), clamped."""
        return self.log_var_c.clamp(LOG_VAR_MIN, LOG_VAR_MAX)

    def log_joint(self, z: Tensor) -> Tensor:
        """log pi_c + log N(z | mu_c, diag sigma_c^2) (eqs. 5, 16), z (..., J) -> (..., K)."""
        mu_c, log_var_c = self.mu_c.to(z.dtype), self.prior_log_var().to(z.dtype)
        diff = z.unsqueeze(-2) - mu_c  # (..., K, J)
        log_density = -0.5 * (LOG_2PI + log_var_c + diff.pow(2) * torch.exp(-log_var_c)).sum(-1)
        return self.log_pi().to(z.dtype) + log_density

    def responsibilities(self, z: Tensor) -> Tensor:
        """gamma_c = q(c|x) ~= p(c|z) (eq. 15), by log-sum-exp: (..., K), rows sum to 1."""
        return torch.softmax(self.log_joint(z), dim=-1)

    def sample_energy(self, z: Tensor) -> Tensor:
        """E(z) = -log sum_c pi_c N(z | mu_c, diag sigma_c^2) (eq. 17): higher = more anomalous."""
        return -torch.logsumexp(self.log_joint(z), dim=-1)

    @torch.no_grad()
    def init_prior_from_gmm(
        self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
    ) -> None:
        """Set pi, mu_c, sigma_c^2 from a fitted sklearn GaussianMixture(covariance_type="diag")."""
        weights = np.asarray(weights, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        covariances = np.asarray(covariances, dtype=np.float64)
        k, j = self.n_components, self.latent_dim
        if weights.shape != (k,) or means.shape != (k, j) or covariances.shape != (k, j):
            raise ValueError(
                f"GMM init expects weights ({k},), means and diagonal covariances ({k}, {j}); "
                f"got {weights.shape}, {means.shape}, {covariances.shape}"
            )
        if np.any(weights <= 0) or np.any(covariances <= 0):
            raise ValueError("GMM init needs positive weights and covariances")
        device = self.pi_logits.device
        self.pi_logits.copy_(torch.as_tensor(np.log(weights / weights.sum()), device=device))
        self.mu_c.copy_(torch.as_tensor(means, device=device))
        self.log_var_c.copy_(torch.as_tensor(np.log(covariances), device=device))

    @torch.no_grad()
    def reset_log_var_head(self, log_var: float) -> None:
        """Make F6 output the constant log sigma~^2 = `log_var` (zero weights, constant bias).

        Pre-training never trains F6; left random, it starts VaDE with posterior variances
        unrelated to the latent scale the pre-trained encoder settled on.
        """
        nn.init.zeros_(self.f6_log_var.weight)
        nn.init.constant_(self.f6_log_var.bias, log_var)

    # ---- objective (eqs. 13-15) --------------------------------------------------------------

    def pretrain_sample_losses(self, x: Tensor) -> dict[str, Tensor]:
        """`pretrain_loss` per sample: each term (N,)."""
        reconstruction = self.reconstruction_nll(x, self.decode(self.encode_mean(x)))
        return {"loss": reconstruction, "reconstruction": reconstruction}

    def pretrain_loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Deterministic auto-encoder on mu~ (IV-C pre-training): mean -log p(x | z = mu~)."""
        reconstruction = self.pretrain_sample_losses(x)["reconstruction"].mean()
        return reconstruction, {"loss": reconstruction, "reconstruction": reconstruction}

    def draw_noise(
        self, n: int, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        """eps ~ N(0, I) of shape (L, n, J) for `loss` of n samples: the draws `loss` makes
        itself when given no `eps` (a distributed trainer draws a global batch's and slices)."""
        return torch.randn(
            (n_samples, n, self.latent_dim),
            generator=generator,
            device=self.mu_c.device,
            dtype=self.mu_c.dtype,
        )

    def loss(
        self,
        x: Tensor,
        n_samples: int = 1,
        eps: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative VaDE ELBO (eq. 14), averaged over the batch, with L = n_samples draws.

        Returns (total, terms); terms = loss, reconstruction (-E log p(x|z)),
        kl_latent (sum_c gamma_c KL(q(z|x) || p(z|c))) and kl_cluster (KL(gamma || pi)).
        gamma (eq. 15) is computed from each draw z_l; the non-reconstruction terms are
        averaged over the L draws like the reconstruction term. `eps` (L, N, J) fixes the noise.
        """
        per_sample = self.sample_losses(x, n_samples, eps, generator)
        terms = {name: value.mean() for name, value in per_sample.items()}
        return terms["loss"], terms

    def sample_losses(
        self,
        x: Tensor,
        n_samples: int = 1,
        eps: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """The terms of `loss` per sample, each (N,), before the batch mean."""
        mean, log_var = self.encode(x)  # (N, J)
        if eps is None:
            eps = self.draw_noise(mean.shape[0], n_samples, generator)
        z = self.reparameterize(mean, log_var, eps)  # (L, N, J), S7

        # (1/L) sum_l log p(x | z_l): the reconstruction term of eq. 14
        reconstruction = self.reconstruction_nll(x, self.decode(z)).mean(0)  # (N,)

        # gamma_c = p(c | z_l), eq. 15, in log space
        log_gamma = torch.log_softmax(self.log_joint(z), dim=-1)  # (L, N, K)
        gamma = log_gamma.exp()

        # 1/2 sum_c gamma_c sum_j [log sigma_c^2 + sigma~^2/sigma_c^2 + (mu~ - mu_c)^2/sigma_c^2]
        #   - 1/2 sum_j (1 + log sigma~^2)
        #   = sum_c gamma_c KL(N(mu~, sigma~^2) || N(mu_c, sigma_c^2))
        log_var_c = self.prior_log_var()  # (K, J)
        var_ratio = torch.exp(log_var.unsqueeze(1) - log_var_c)  # (N, K, J)
        mahalanobis = (mean.unsqueeze(1) - self.mu_c).pow(2) * torch.exp(-log_var_c)
        cross_entropy = 0.5 * (log_var_c + var_ratio + mahalanobis).sum(-1)  # (N, K)
        neg_entropy = -0.5 * (1.0 + log_var).sum(-1)  # (N,)
        kl_latent = ((gamma * cross_entropy).sum(-1) + neg_entropy).mean(0)  # (N,)

        # -sum_c gamma_c log(pi_c / gamma_c) = KL(gamma || pi)
        kl_cluster = (gamma * (log_gamma - self.log_pi())).sum(-1).mean(0)  # (N,)

        return {
            "loss": reconstruction + kl_latent + kl_cluster,
            "reconstruction": reconstruction,
            "kl_latent": kl_latent,
            "kl_cluster": kl_cluster,
        }

    def forward(self, x: Tensor) -> Tensor:
        """Sample energy of the encoder mean: the test-time anomaly score (eq. 17, z = mu~)."""
        return self.sample_energy(self.encode_mean(x))
