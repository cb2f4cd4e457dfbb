"""Spatio-temporal dissociation (Chang et al. 2022): spatial and motion auto-encoders."""
