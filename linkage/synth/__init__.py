"""Synthetic Integrated Data System: families, households and twelve agency sources
with realistic identifier quality, plus the ground truth of who is who."""
from .config import ErrorRates, Participation, SourceQuality, SynthConfig
from .generate import GROUND_TRUTH, generate, iter_chunks

__all__ = ["ErrorRates", "Participation", "SourceQuality", "SynthConfig", "GROUND_TRUTH", "generate", "iter_chunks"]
