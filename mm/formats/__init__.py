"""Whole-model checkpoints of other projects (VisualGLM-6B), loaded into this project's model."""
