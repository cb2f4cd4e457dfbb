"""ITAE + Glow (Cho, Kim, Lee): two-path 3D auto-encoder and flow-based density on its latents."""
