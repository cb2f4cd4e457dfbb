"""Object-velocity density (Reiss & Hoshen, "Attribute-based Representations for Accurate and
Interpretable Video Anomaly Detection", arXiv 2212.00789), velocity attributes only: each
object of the `objects` stage is described by the optical flow inside its box (features.py),
scored by its k-nearest-neighbour distance to the training objects per attribute, calibrated
by training statistics and summed (density.py); method.py puts it behind the Method interface.
"""
