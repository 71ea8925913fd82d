"""Text utilities every stage shares: normalisation with offsets, grounding, units, tokens, prompts."""
