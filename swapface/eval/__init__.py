"""Evaluation of a swap: metrics (shared with training) and the `swapface eval` stage."""
