"""Stage 3: the hardware plan (layer -> stage, array sizes, folding, cycle model)."""
